package decktest

import (
	"time"

	"github.com/deck-mesh/deck/node/api"
)

var logTexts = []struct {
	node   api.NodeID
	daemon string
	level  api.LogLevel
	text   string
}{
	{Gibson, "ingest-0", api.LevelInfo, "batch 8841 committed (412 records)"},
	{Wintermute, "oracle-0", api.LevelInfo, "standby oracle-1 synced through 40198"},
	{Chiba, "ice-breaker-0", api.LevelError, "panic: runtime error: index out of range [3] with length 3"},
	{Straylight, "sensor-grid-0", api.LevelWarn, "health probe timed out after 2s"},
	{Gibson, "cache-0", api.LevelInfo, "migration mig-7 transfer 46% (18.2 MiB of 39.6 MiB)"},
	{Neuromancer, "ingest-2", api.LevelWarn, "replay lag 1.2s behind leader"},
	{Sprawl, "tracer-0", api.LevelWarn, "saturation 0.91 above soft limit 0.80"},
	{Straylight, "", api.LevelInfo, "maintenance: draining 2 daemons, 1 replica left"},
	{Chiba, "", api.LevelError, "drain failed: ledger has no eligible target"},
	{Villa, "ledger-0", api.LevelDebug, "compaction pass freed 12 segments"},
	{Gibson, "", api.LevelDebug, "gossip round 88120: 9 peers, 2 fresh snapshots"},
	{Wintermute, "ingest-1", api.LevelTrace, "fsync 0.8ms"},
}

// Logs is the fixture's log backlog: n deterministic records, one second
// apart, ending at T0.
func Logs(n int) []api.LogRecord {
	out := make([]api.LogRecord, n)
	for i := range out {
		t := logTexts[i%len(logTexts)]
		out[i] = api.LogRecord{Seq: uint64(i + 1), At: T0.Add(-time.Duration(n-i) * time.Second),
			Node: t.node, Daemon: t.daemon, Level: t.level, Text: t.text}
	}
	return out
}

// Failures is the fixture's failure backlog.
func Failures() []api.FailureRecord {
	return []api.FailureRecord{
		{Seq: 24, At: ago(31 * time.Minute), Node: Villa, Source: "placement", Reason: "no node with capability gpu below saturation 0.8"},
		{Seq: 25, At: ago(6 * time.Minute), Node: Chiba, Source: "admit", Reason: "evict ledger blocked: no eligible target (quorum 3, 2 candidates)"},
		{Seq: 26, At: ago(2*time.Minute + 4*time.Second), Node: Sprawl, Source: "membership", Reason: "peer freeside unreachable after 5 missed heartbeats"},
		{Seq: 27, At: ago(95 * time.Second), Node: Straylight, Source: "migration", Reason: "mig-8 snapshot of sensor-grid-0 timed out (retry 2/5)"},
		{Seq: 28, At: ago(40 * time.Second), Node: Straylight, Source: "daemon", Reason: "sensor-grid-0 health probe timeout; backing off 8s"},
		{Seq: 29, At: ago(9 * time.Second), Node: Chiba, Source: "daemon", Reason: "ice-breaker-0 exited: status 2 (restart 14, crash-looping)"},
	}
}
