package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Source is what the collector reads: a *node.Node.
type Source interface {
	Stats() node.Stats
}

// Collector turns a node's Stats into metrics on every scrape.
type Collector struct {
	src      Source
	families []family
}

// NewCollector collects src's stats.
func NewCollector(src Source) *Collector {
	c := &Collector{src: src, families: families()}
	for i := range c.families {
		f := &c.families[i]
		f.desc = prometheus.NewDesc(f.name, f.help, f.labels, nil)
	}
	return c
}

// Describe sends every family's descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.families {
		ch <- c.families[i].desc
	}
}

// Collect reads the node's stats once and sends every family's values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v := newView(c.src.Stats(), time.Now())
	for i := range c.families {
		f := &c.families[i]
		for _, s := range f.series {
			x, ok := s.value(&v)
			if !ok {
				continue
			}
			lvs := s.labelValues
			if s.labelsOf != nil {
				lvs = s.labelsOf(&v)
			}
			ch <- prometheus.MustNewConstMetric(f.desc, f.kind, x, lvs...)
		}
	}
}

// family is one metric name: its type, help, label names, and its series
// (one per combination of label values, a bounded few).
type family struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string
	series     []series
	desc       *prometheus.Desc
}

type series struct {
	labelValues []string
	// labelsOf, when set, gives the label values at collection instead.
	labelsOf func(*view) []string
	// value is the series' value; false leaves it out of this scrape
	// (nothing measured yet).
	value func(*view) (float64, bool)
}

// view is one scrape's stats with the aggregates the families read.
type view struct {
	node.Stats
	now            time.Time
	peersByHealth  [3]int // by snapshot.Health
	sessions       int
	rttPeers       int
	rttMin, rttMax time.Duration
	rttSum         time.Duration
	daemonsByState [7]int // by snapshot.Lifecycle
}

func newView(s node.Stats, now time.Time) view {
	v := view{Stats: s, now: now}
	for _, p := range s.Peers {
		if int(p.Health) < len(v.peersByHealth) {
			v.peersByHealth[p.Health]++
		}
		if p.Session {
			v.sessions++
		}
		if p.RTT > 0 && p.Health != snapshot.Unreachable {
			if v.rttPeers == 0 || p.RTT < v.rttMin {
				v.rttMin = p.RTT
			}
			v.rttMax = max(v.rttMax, p.RTT)
			v.rttSum += p.RTT
			v.rttPeers++
		}
	}
	if s.Own != nil {
		for _, d := range s.Own.Daemons {
			if int(d.Lifecycle) < len(v.daemonsByState) {
				v.daemonsByState[d.Lifecycle]++
			}
		}
	}
	return v
}

// counter is an unlabelled counter family.
func counter(name, help string, value func(*view) uint64) family {
	return family{name: name, help: help, kind: prometheus.CounterValue,
		series: []series{{value: func(v *view) (float64, bool) { return float64(value(v)), true }}}}
}

// gauge is an unlabelled gauge family.
func gauge(name, help string, value func(*view) float64) family {
	return family{name: name, help: help, kind: prometheus.GaugeValue,
		series: []series{{value: func(v *view) (float64, bool) { return value(v), true }}}}
}

// labelled is a family with one series per label value.
func labelled(kind prometheus.ValueType, name, help, label string, values []string, value func(v *view, i int) float64) family {
	f := family{name: name, help: help, kind: kind, labels: []string{label}}
	for i, lv := range values {
		f.series = append(f.series, series{labelValues: []string{lv}, value: func(v *view) (float64, bool) { return value(v, i), true }})
	}
	return f
}

var (
	healthLabels = []string{snapshot.Healthy.String(), snapshot.Suspect.String(), snapshot.Unreachable.String()}
	// daemonStates are the lifecycle states a node's snapshot lists (a
	// stopped daemon leaves it).
	daemonStates = []snapshot.Lifecycle{snapshot.LifecyclePending, snapshot.LifecycleStarting, snapshot.LifecycleRunning,
		snapshot.LifecycleDraining, snapshot.LifecycleMigrating, snapshot.LifecycleCrashed}
	daemonStateLabels = func() []string {
		out := make([]string, len(daemonStates))
		for i, l := range daemonStates {
			out[i] = l.String()
		}
		return out
	}()
)

// families lists every metric the node exposes.
func families() []family {
	return []family{
		// Transport.
		counter("deck_transport_packets_received_total", "Datagrams read from the socket.",
			func(v *view) uint64 { return v.Transport.PacketsIn }),
		counter("deck_transport_packets_sent_total", "Datagrams written to the socket.",
			func(v *view) uint64 { return v.Transport.PacketsOut }),
		counter("deck_transport_received_bytes_total", "Bytes read from the socket.",
			func(v *view) uint64 { return v.Transport.BytesIn }),
		counter("deck_transport_sent_bytes_total", "Bytes written to the socket.",
			func(v *view) uint64 { return v.Transport.BytesOut }),
		counter("deck_transport_packets_dropped_total", "Datagrams dropped: malformed, unknown session, failed decryption, no route, full queues.",
			func(v *view) uint64 { return v.Transport.Drops }),
		counter("deck_transport_packets_forwarded_total", "Datagrams relayed for other nodes.",
			func(v *view) uint64 { return v.Transport.Forwarded }),
		counter("deck_transport_replays_rejected_total", "Data packets refused by the anti-replay window.",
			func(v *view) uint64 { return v.Transport.ReplaysRejected }),
		counter("deck_transport_auth_failures_total", "Handshakes and packets that failed authentication.",
			func(v *view) uint64 { return v.Transport.AuthFailures }),
		counter("deck_transport_handshakes_rate_limited_total", "Handshake messages refused by the per-source rate limit.",
			func(v *view) uint64 { return v.Transport.HandshakesRateLimited }),
		counter("deck_transport_handshake_mac1_failures_total", "Handshake messages dropped for a bad mac1 (a sender without the cluster PSK).",
			func(v *view) uint64 { return v.Transport.HandshakeMAC1Failures }),
		counter("deck_transport_cookie_replies_sent_total", "Cookie replies sent to handshake initiators while under load.",
			func(v *view) uint64 { return v.Transport.CookieRepliesSent }),
		counter("deck_transport_responders_evicted_total", "Half-open handshake responders evicted to make room.",
			func(v *view) uint64 { return v.Transport.RespondersEvicted }),
		counter("deck_transport_pending_packets_dropped_total", "Packets from peers pending admission, dropped before any service.",
			func(v *view) uint64 { return v.Transport.PendingDrops }),
		gauge("deck_transport_sessions", "Peers with an established end-to-end session.",
			func(v *view) float64 { return float64(v.sessions) }),
		labelled(prometheus.GaugeValue, "deck_transport_peers", "Admitted peers in the transport's table, by health.", "health", healthLabels,
			func(v *view, i int) float64 { return float64(v.peersByHealth[i]) }),
		gauge("deck_transport_pending_peers", "Peers that completed a handshake here and wait for admission.",
			func(v *view) float64 { return float64(v.PendingPeers) }),
		{name: "deck_transport_peer_rtt_seconds", help: "Smoothed round-trip time to the reachable peers, aggregated over them (absent before one is measured).",
			kind: prometheus.GaugeValue, labels: []string{"aggregate"}, series: []series{
				{labelValues: []string{"min"}, value: func(v *view) (float64, bool) { return v.rttMin.Seconds(), v.rttPeers > 0 }},
				{labelValues: []string{"mean"}, value: func(v *view) (float64, bool) {
					if v.rttPeers == 0 {
						return 0, false
					}
					return (v.rttSum / time.Duration(v.rttPeers)).Seconds(), true
				}},
				{labelValues: []string{"max"}, value: func(v *view) (float64, bool) { return v.rttMax.Seconds(), v.rttPeers > 0 }},
			}},

		// Gossip.
		counter("deck_gossip_envelopes_received_total", "Snapshot envelopes received.",
			func(v *view) uint64 { return v.Gossip.Received }),
		labelled(prometheus.CounterValue, "deck_gossip_envelopes_total", "Received snapshot envelopes by outcome (each ends in exactly one).", "outcome",
			[]string{"accepted", "duplicate", "outdated", "rejected", "expired", "overflow", "signer_limited", "sender_limited"},
			func(v *view, i int) float64 {
				g := &v.Gossip
				return float64([...]uint64{g.Accepted, g.Duplicates, g.Outdated, g.Rejected, g.Expired, g.Overflow, g.SignerLimited, g.SenderLimited}[i])
			}),
		counter("deck_gossip_envelopes_not_member_total", "Rejected envelopes whose signer is not a member (a subset of outcome=\"rejected\").",
			func(v *view) uint64 { return v.Gossip.NotMember }),
		counter("deck_gossip_inbox_dropped_total", "Gossip messages dropped because the service was behind.",
			func(v *view) uint64 { return v.Gossip.InboxDropped }),
		counter("deck_gossip_sends_dropped_total", "Gossip sends dropped because the outbox was full.",
			func(v *view) uint64 { return v.Gossip.SendDropped }),
		gauge("deck_gossip_nodes", "Node snapshots held, this node's own included.",
			func(v *view) float64 { return float64(v.Gossip.Nodes) }),

		// Admin ledger.
		gauge("deck_ledger_events", "Events in this node's copy of the admin ledger (the head's count).",
			func(v *view) float64 { return float64(v.Ledger.Count) }),
		gauge("deck_ledger_head_seq", "Local sequence number of the ledger's last stored event.",
			func(v *view) float64 { return float64(v.Ledger.LastSeq) }),
		gauge("deck_ledger_fold_lag_events", "Ledger events stored but not yet folded into the admin state.",
			func(v *view) float64 { return float64(v.FoldLag()) }),
		counter("deck_ledger_antientropy_rounds_total", "Anti-entropy rounds run.",
			func(v *view) uint64 { return v.AntiEntropy.Rounds }),
		counter("deck_ledger_antientropy_events_pulled_total", "Ledger events added from peers by anti-entropy.",
			func(v *view) uint64 { return v.AntiEntropy.Pulled }),
		counter("deck_ledger_antientropy_events_rejected_total", "Pulled ledger events the validator refused.",
			func(v *view) uint64 { return v.AntiEntropy.Rejected }),
		counter("deck_ledger_antientropy_requests_served_total", "Anti-entropy requests answered.",
			func(v *view) uint64 { return v.AntiEntropy.Served }),
		counter("deck_ledger_antientropy_requests_throttled_total", "Anti-entropy requests refused because the asking peer's queue was full.",
			func(v *view) uint64 { return v.AntiEntropy.Throttled }),
		counter("deck_ledger_antientropy_requests_dropped_total", "Anti-entropy requests and hints dropped because a shared queue was full.",
			func(v *view) uint64 { return v.AntiEntropy.Dropped }),
		counter("deck_ledger_antientropy_hints_limited_total", "Anti-entropy hints ignored by the sender's hint budget.",
			func(v *view) uint64 { return v.AntiEntropy.HintsLimited }),
		counter("deck_ledger_commit_pushes_refused_total", "Admin events pushed by peers and dropped by the push budget.",
			func(v *view) uint64 { return v.CommitPushes.PushesRefused }),

		// Log and failure subscriptions.
		gauge("deck_subscription_leases", "Subscription leases this node serves.",
			func(v *view) float64 { return float64(v.Subscriptions.Leases) }),
		counter("deck_subscription_lease_setups_rate_limited_total", "Lease setups and rewinds refused by the client's setup budget.",
			func(v *view) uint64 { return v.Subscriptions.RateLimited }),
		counter("deck_subscription_lease_setups_queue_full_total", "Lease setups refused because the setup queue was full.",
			func(v *view) uint64 { return v.Subscriptions.SetupQueueFull }),
		counter("deck_subscription_records_pushed_total", "Log and failure records pushed to subscribers.",
			func(v *view) uint64 { return v.Subscriptions.Pushed }),
		counter("deck_subscription_records_dropped_total", "Records skipped by a lease's backlog bound.",
			func(v *view) uint64 { return v.Subscriptions.Dropped }),
		counter("deck_subscription_records_misattributed_total", "Pushed records naming a node other than their pusher, dropped.",
			func(v *view) uint64 { return v.Subscriptions.Misattributed }),

		// Chains (Badger).
		counter("deck_chain_records_committed_total", "Records committed to the node's chains.",
			func(v *view) uint64 { return v.Chains.Records }),
		counter("deck_chain_commit_errors_total", "Group commits that failed.",
			func(v *view) uint64 { return v.Chains.CommitErrors }),
		labelled(prometheus.CounterValue, "deck_chain_appends_dropped_total", "Log and failure appends refused because the write queue was full.", "log",
			[]string{"logs", "failures"},
			func(v *view, i int) float64 {
				return float64([...]uint64{v.Chains.LogsDropped, v.Chains.FailuresDropped}[i])
			}),

		// MeshDB.
		counter("deck_query_queries_total", "MeshDB queries this node coordinated.",
			func(v *view) uint64 { return v.Query.Queries }),
		counter("deck_query_failovers_total", "Query fragments moved to another holder mid-query.",
			func(v *view) uint64 { return v.Query.Failovers }),
		counter("deck_query_partial_total", "Queries that ended with a fragment's rows missing.",
			func(v *view) uint64 { return v.Query.Partial }),
		gauge("deck_query_served_fragments", "Fragments this node serves for its peers now.",
			func(v *view) float64 { return float64(v.Query.Serve.Active) }),
		{name: "deck_query_served_fragments_total", help: "Fragments served for peers, by how they ended.",
			kind: prometheus.CounterValue, labels: []string{"outcome"}, series: []series{
				{labelValues: []string{"completed"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.Completed), true }},
				{labelValues: []string{"cancelled"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.Cancelled), true }},
				{labelValues: []string{"expired"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.Expired), true }},
			}},
		{name: "deck_query_refused_total", help: "Fragment requests refused or cut short, by why.",
			kind: prometheus.CounterValue, labels: []string{"reason"}, series: []series{
				{labelValues: []string{"rate"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.RefusedRate), true }},
				{labelValues: []string{"busy"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.RefusedBusy), true }},
				{labelValues: []string{"invalid"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.Invalid), true }},
				{labelValues: []string{"memory"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.MemoryRefused), true }},
				{labelValues: []string{"scan_budget"}, value: func(v *view) (float64, bool) { return float64(v.Query.Serve.Truncated), true }},
			}},
		counter("deck_query_scanned_records_total", "Records scanned for peers' fragments.",
			func(v *view) uint64 { return v.Query.Serve.Scanned }),
		counter("deck_query_throttled_total", "Fragment turns deferred because the peer's scan budget was in debt.",
			func(v *view) uint64 { return v.Query.Serve.Throttled }),
		// MeshOS.
		labelled(prometheus.GaugeValue, "deck_meshos_daemons", "Daemons on this node, by lifecycle state.", "state", daemonStateLabels,
			func(v *view, i int) float64 { return float64(v.daemonsByState[daemonStates[i]]) }),
		counter("deck_meshos_messages_misattributed_total", "MeshOS messages refused because their sender may not say what they said.",
			func(v *view) uint64 { return v.MisattributedMessages }),

		// The node.
		{name: "deck_node_info", help: "This node's id and version (always 1).", kind: prometheus.GaugeValue, labels: []string{"node_id", "version"},
			series: []series{{labelsOf: func(v *view) []string { return []string{v.Own.ID.String(), v.Own.Version} },
				value: func(v *view) (float64, bool) { return 1, v.Own != nil }}}},
		{name: "deck_node_stats_age_seconds", help: "Age of the figures the node's loop last read (peers, ledger, gossip); grows if the loop stalls.",
			kind: prometheus.GaugeValue, series: []series{{value: func(v *view) (float64, bool) {
				return v.now.Sub(v.ObservedAt).Seconds(), !v.ObservedAt.IsZero()
			}}}},
	}
}
