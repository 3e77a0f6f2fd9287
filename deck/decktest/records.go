package decktest

import (
	"fmt"
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
	{Wintermute, "oracle-a", api.LevelInfo, "standby oracle-b synced through 40198"},
	{Chiba, "ice-breaker", api.LevelError, "panic: runtime error: index out of range [3] with length 3"},
	{Straylight, "sensor-grid", api.LevelWarn, "health probe timed out after 2s"},
	{Gibson, "cache-7", api.LevelInfo, "migration mig-7 transfer 46% (18.2 MiB of 39.6 MiB)"},
	{Neuromancer, "ingest-2", api.LevelWarn, "replay lag 1.2s behind leader"},
	{Sprawl, "tracer", api.LevelWarn, "saturation 0.91 above soft limit 0.80"},
	{Straylight, "", api.LevelInfo, "maintenance: draining 2 daemons, 1 replica left"},
	{Chiba, "", api.LevelError, "drain failed: ledger.audit has no eligible target"},
	{Villa, "archivist", api.LevelDebug, "compaction pass freed 12 segments"},
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
		{Seq: 25, At: ago(6 * time.Minute), Node: Chiba, Source: "admit", Reason: "evict ledger.audit blocked: no eligible target (quorum 3, 2 candidates)"},
		{Seq: 26, At: ago(2*time.Minute + 4*time.Second), Node: Sprawl, Source: "membership", Reason: "peer freeside unreachable after 5 missed heartbeats"},
		{Seq: 27, At: ago(95 * time.Second), Node: Straylight, Source: "migration", Reason: "mig-8 snapshot of sensor-grid timed out (retry 2/5)"},
		{Seq: 28, At: ago(40 * time.Second), Node: Straylight, Source: "daemon", Reason: "sensor-grid health probe timeout; backing off 8s"},
		{Seq: 29, At: ago(9 * time.Second), Node: Chiba, Source: "daemon", Reason: "ice-breaker exited: status 2 (restart 14, crash-looping)"},
	}
}

// Audit is the fixture's admin ledger: routine verbs, an ICE freeze signed
// by two operators, and a rejected attempt.
func Audit() []api.AuditRecord {
	alice, bob := OperatorKey("alice").ID, OperatorKey("bob").ID
	mallory := OperatorKey("mallory").ID
	rec := func(seq uint64, at time.Duration, op api.NodeID, a api.Action) api.AuditRecord {
		return api.AuditRecord{Seq: seq, EventID: fmt.Sprintf("ev-%04d", seq), At: ago(at), IssuedAt: ago(at + time.Second),
			Operator: op, Action: a, Nonce: fmt.Sprintf("n%04d", seq), Signatures: []api.Signature{{Operator: op, Sig: make([]byte, 64)}}}
	}
	out := []api.AuditRecord{
		rec(1, 3*time.Hour, alice, api.Action{Verb: api.VerbCordon, Node: Zion}),
		rec(2, 2*time.Hour+50*time.Minute, alice, api.Action{Verb: api.VerbEnterMaintenance, Node: Zion, Duration: 10 * time.Minute}),
		rec(3, 40*time.Minute, bob, api.Action{Verb: api.VerbRestartDaemon, Daemon: "tracer"}),
		rec(4, 12*time.Minute, alice, api.Action{Verb: api.VerbCordon, Node: Chiba}),
		rec(5, 6*time.Minute+30*time.Second, alice, api.Action{Verb: api.VerbDrain, Node: Chiba, Duration: 5 * time.Minute}),
		rec(6, 3*time.Minute, bob, api.Action{Verb: api.VerbEnterMaintenance, Node: Straylight, Duration: 7*time.Minute + 12*time.Second}),
		rec(7, 2*time.Minute+30*time.Second, alice, api.Action{Verb: api.VerbFreezeCluster, Reason: "incident 4471: ledger divergence", Duration: 10 * time.Minute}),
		rec(8, 2*time.Minute, mallory, api.Action{Verb: api.VerbForceDrain, Node: Wintermute}),
		rec(9, 55*time.Second, bob, api.Action{Verb: api.VerbForceEvictReplica, Chain: "ledger.audit", Peer: Chiba}),
	}
	out[6].ICE = true
	out[6].Signatures = append(out[6].Signatures, api.Signature{Operator: bob, Sig: make([]byte, 64)})
	out[7].ICE = true
	out[7].Outcome = api.Rejected
	out[7].Reason = "unknown operator"
	out[8].ICE = true
	out[8].Signatures = append(out[8].Signatures, api.Signature{Operator: alice, Sig: make([]byte, 64)})
	return out
}
