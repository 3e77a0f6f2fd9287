package metrics

import "time"

// The metrics endpoint's bounds. A scrape costs tens of microseconds (see
// BENCHMARKS.md, "Issue 13 — metrics"); these keep a client that asks too
// often, too slowly or too many times at once from costing more.
const (
	// MaxConcurrentScrapes is how many /metrics requests are served at
	// once; more are answered 503 at once (promhttp's MaxRequestsInFlight).
	MaxConcurrentScrapes = 2
	// ScrapeTimeout bounds one scrape's gathering and writing; past it
	// the client gets 503.
	ScrapeTimeout = 10 * time.Second
	// MaxConnections is how many HTTP connections the server holds open;
	// further ones wait in the kernel's accept queue (file descriptors are
	// the node's: Badger and the UDP socket need them).
	MaxConnections = 16
	// ReadHeaderTimeout closes a connection that has not sent its request
	// headers in time (slowloris).
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request.
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds writing a response, after ScrapeTimeout so a
	// scrape that runs out of time still gets its 503.
	WriteTimeout = ScrapeTimeout + 5*time.Second
	// IdleTimeout closes a kept-alive connection between scrapes (a
	// Prometheus server scrapes every 15 s to 1 min by default; reopening
	// costs a TCP handshake on loopback).
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers; a scrape sends a few
	// hundred bytes.
	MaxHeaderBytes = 8 << 10
	// ShutdownTimeout is how long Close lets a scrape in flight finish.
	ShutdownTimeout = time.Second
)
