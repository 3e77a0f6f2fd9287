// Package metrics exposes a running node's counters to Prometheus: a
// prometheus.Collector that reads node.Stats on every scrape (no counter of
// its own, no lock the node's services take) and a small HTTP server for
// /metrics whose concurrency, timeouts and connections are bounded, so a
// scraper, slow or hostile, cannot hold the node up.
//
// Metric names follow Prometheus conventions: deck_<subsystem>_<what>,
// units in the name, _total on counters, and only small bounded label sets
// (health, state, outcome); never a label per peer.
package metrics
