package command

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/crypto/blake2b"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// movesHashPrefix separates move hashes from every other hash.
const movesHashPrefix = "deck-moves-v1:"

// HashMoves is BLAKE2b-256 over what an action moves: the action, the nodes
// affected, every replica from → to, every daemon restarted or migrating and
// every leader change, each list in canonical order. Routine admin events
// carry it as their BlastHash: it is what the operator confirmed, and a
// commit whose recomputed projection hashes differently is refused
// (ErrPreviewChanged). Unlike HashBlastRadius it leaves out warnings, hot
// nodes and the drain time, which follow the load gauges from second to
// second while nothing the operator agreed to move has changed.
func HashMoves(br *api.BlastRadius) [32]byte {
	m := canonicalMoves(br)
	h := newMovesHasher(movesHashPrefix, &m)
	h.nodes(m.Nodes)
	h.replicas(m.Replicas)
	h.strs(m.Restarted)
	h.migrations(m.Migrated)
	h.leaders(m.Leaders)
	if len(m.BlobMoves) > 0 {
		// Blob verbs only: every admin event's hash stays what it was.
		for _, mv := range m.BlobMoves {
			h.p = append(h.p, mv.Blob[:]...)
			h.p = binary.BigEndian.AppendUint64(h.p, uint64(mv.From))
			h.p = binary.BigEndian.AppendUint64(h.p, uint64(mv.To))
		}
	}
	return blake2b.Sum256(h.p)
}

// canonicalMoves is the moving part of br with every list sorted, so two
// projections that move the same things hash the same whatever order the
// placement produced them in.
func canonicalMoves(br *api.BlastRadius) api.BlastRadius {
	m := api.BlastRadius{
		Action:    cloneAction(br.Action),
		Nodes:     slices.Clone(br.Nodes),
		Replicas:  slices.Clone(br.Replicas),
		Restarted: slices.Clone(br.Restarted),
		Migrated:  slices.Clone(br.Migrated),
		Leaders:   slices.Clone(br.Leaders),
		BlobMoves: slices.Clone(br.BlobMoves),
	}
	slices.SortFunc(m.BlobMoves, func(x, y api.BlobMove) int {
		return cmp.Or(bytes.Compare(x.Blob[:], y.Blob[:]), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	slices.Sort(m.Nodes)
	slices.SortFunc(m.Replicas, func(x, y api.ReplicaMove) int {
		return cmp.Or(cmp.Compare(x.Chain, y.Chain), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	slices.Sort(m.Restarted)
	slices.SortFunc(m.Migrated, func(x, y api.DaemonMove) int {
		return cmp.Or(cmp.Compare(x.Daemon, y.Daemon), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	slices.SortFunc(m.Leaders, func(x, y api.LeaderMove) int {
		return cmp.Or(cmp.Compare(x.Chain, y.Chain), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
	})
	return m
}

// maxChangeLines bounds the change list of a PreviewChangedError: the new
// preview shows the rest.
const maxChangeLines = 8

// DiffMoves names what moves differently in now than in confirmed, one line
// per change ("replica inference n2 → n3 no longer moves", "daemon
// web-1 now migrates n2 → n4"), at most maxChangeLines of them (the last one
// then says how many more). Empty when both move the same things.
func DiffMoves(confirmed, now *api.BlastRadius) []string {
	a, b := canonicalMoves(confirmed), canonicalMoves(now)
	var out []string
	route := func(from, to identity.NodeID) string {
		if to == 0 {
			return fmt.Sprintf("%s → nowhere", from)
		}
		return fmt.Sprintf("%s → %s", from, to)
	}
	out = diffLists(out, a.Replicas, b.Replicas, func(r api.ReplicaMove) string {
		return fmt.Sprintf("replica %s %s", r.Chain, route(r.From, r.To))
	}, "moves")
	out = diffLists(out, a.Migrated, b.Migrated, func(d api.DaemonMove) string {
		return fmt.Sprintf("daemon %s %s", d.Daemon, route(d.From, d.To))
	}, "migrates")
	out = diffLists(out, a.Restarted, b.Restarted, func(d string) string { return "daemon " + d }, "restarts")
	out = diffLists(out, a.Leaders, b.Leaders, func(l api.LeaderMove) string {
		return fmt.Sprintf("chain %s leader %s", l.Chain, route(l.From, l.To))
	}, "changes")
	out = diffLists(out, a.BlobMoves, b.BlobMoves, blobMoveText, "happens")
	out = diffLists(out, a.Nodes, b.Nodes, func(n identity.NodeID) string { return "node " + n.String() }, "affected")
	if len(out) == 0 && HashMoves(&a) != HashMoves(&b) {
		out = append(out, "the action itself differs")
	}
	if len(out) > maxChangeLines {
		more := len(out) - (maxChangeLines - 1)
		out = append(out[:maxChangeLines-1], fmt.Sprintf("… and %d more changes", more))
	}
	return out
}

// diffLists appends "X no longer <verb>" for each element of was missing
// from is, then "X now <verb>" for each element of is missing from was.
func diffLists[T comparable](out []string, was, is []T, name func(T) string, verb string) []string {
	for _, x := range was {
		if !slices.Contains(is, x) {
			out = append(out, name(x)+" no longer "+verb)
		}
	}
	for _, x := range is {
		if !slices.Contains(was, x) {
			out = append(out, name(x)+" now "+verb)
		}
	}
	return out
}

// PreviewChanged checks that now moves what confirmed moved, and if not
// returns an *api.PreviewChangedError carrying now.
func PreviewChanged(confirmed, now *api.BlastRadius) error {
	if HashMoves(confirmed) == HashMoves(now) {
		return nil
	}
	return &api.PreviewChangedError{Changes: DiffMoves(confirmed, now), Preview: cloneRadius(*now)}
}
