package query

import (
	"github.com/deck-mesh/deck/node/api"
)

// Family is a kind of chain: what its records are and who holds them.
type Family uint8

const (
	famNone Family = iota
	// FamLogs, FamFailures and FamSnapshots are per-node chains: every
	// node holds its own (one instance per node, held by that node).
	FamLogs
	FamFailures
	FamSnapshots
	// FamAdmin is the admin ledger: one instance, replicated to every
	// node (consoles included).
	FamAdmin
	// FamReplica is a workload group's replicated chain of daemon
	// checkpoints, held by the holders placement chose.
	FamReplica
	famCount
)

// Chain names of the built-in families.
const (
	ChainLogs      = "logs"
	ChainFailures  = "failures"
	ChainSnapshots = "snapshots"
	ChainAdmin     = "admin"
)

var familyNames = [famCount]string{"", ChainLogs, ChainFailures, ChainSnapshots, ChainAdmin, "replica"}

func (f Family) String() string {
	if f < famCount {
		return familyNames[f]
	}
	return "family?"
}

// perNode reports whether every node holds its own instance.
func (f Family) perNode() bool { return f == FamLogs || f == FamFailures || f == FamSnapshots }

// timed reports whether the family's records carry a time that never
// decreases along the chain (so a time range is found by binary search).
func (f Family) timed() bool { return f.perNode() }

// hasTime reports whether the family has an `at` column.
func (f Family) hasTime() bool { return f != FamReplica }

func col(name string, k api.ValueKind) api.QueryColumn { return api.QueryColumn{Name: name, Kind: k} }

// Column indexes shared by every sequenced family: seq first, at second
// (replica chains have no time: seq, daemon, …).
const (
	colSeq = 0
	colAt  = 1
)

// Family schemas. Column order is the wire order: never reorder, append.
var schemas = [famCount][]api.QueryColumn{
	FamLogs: {col("seq", api.KindInt), col("at", api.KindTime), col("node", api.KindNode),
		col("level", api.KindLevel), col("daemon", api.KindString), col("text", api.KindString)},
	FamFailures: {col("seq", api.KindInt), col("at", api.KindTime), col("node", api.KindNode),
		col("source", api.KindString), col("reason", api.KindString), col("daemon", api.KindString)},
	FamSnapshots: {col("seq", api.KindInt), col("at", api.KindTime), col("node", api.KindNode),
		col("generation", api.KindInt), col("label", api.KindString), col("cpu", api.KindFloat),
		col("mem", api.KindFloat), col("disk", api.KindFloat), col("saturation", api.KindFloat),
		col("daemons", api.KindInt), col("replicas", api.KindInt), col("pending", api.KindInt),
		col("maintenance", api.KindString), col("cordoned", api.KindBool), col("snapshot", api.KindBytes)},
	FamAdmin: {col("seq", api.KindInt), col("at", api.KindTime), col("operator", api.KindNode),
		col("verb", api.KindString), col("target", api.KindString), col("outcome", api.KindString),
		col("ice", api.KindBool), col("reason", api.KindString), col("event", api.KindString)},
	FamReplica: {col("seq", api.KindInt), col("daemon", api.KindString), col("bytes", api.KindInt),
		col("digest", api.KindString)},
}

// nodeColumn is the index of a per-node family's node column.
const nodeColumn = 2

// snapshotColumn is the snapshots family's encoded-snapshot column (the
// gossip encoding; History decodes it).
const snapshotColumn = 14

// Schema is a family's columns.
func Schema(f Family) []api.QueryColumn {
	if f >= famCount {
		return nil
	}
	return schemas[f]
}

// boundsSchema is bounds(CHAIN)'s output: one row per instance.
var boundsSchema = []api.QueryColumn{
	col("chain", api.KindString), col("node", api.KindNode), col("holder", api.KindNode),
	col("first_seq", api.KindInt), col("last_seq", api.KindInt),
	col("first_at", api.KindTime), col("last_at", api.KindTime), col("records", api.KindInt),
}

// chainsSchema is chains()'s output: the catalogue.
var chainsSchema = []api.QueryColumn{
	col("chain", api.KindString), col("kind", api.KindString), col("group", api.KindString),
	col("instances", api.KindInt), col("holders", api.KindString), col("leader", api.KindNode),
	col("head_seq", api.KindInt), col("desired", api.KindInt), col("status", api.KindString),
}

// lineageSchema is lineage(), siblings() and descendants()'s output.
var lineageSchema = []api.QueryColumn{
	col("depth", api.KindInt), col("relation", api.KindString), col("group", api.KindString),
	col("kind", api.KindString), col("parent", api.KindString), col("fork_at", api.KindInt),
	col("chain", api.KindString), col("members", api.KindString), col("holders", api.KindInt),
	col("head_seq", api.KindInt), col("sentinel", api.KindString),
}

// columnIndex is the index of name in cols, or -1.
func columnIndex(cols []api.QueryColumn, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}
