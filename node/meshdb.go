package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/query"
	"github.com/deck-mesh/deck/node/snapshot"
)

// newQueryEngine is MeshDB on this node: the chains it serves (its logs,
// failures and snapshot history, its copy of the admin ledger, its
// replicas of workload chains) and its view of who holds the rest.
func (n *Node) newQueryEngine(limits query.ServeLimits) (*query.Engine, error) {
	snaps, err := n.db.Log(chain.LogSnapshots)
	if err != nil {
		return nil, fmt.Errorf("node: meshdb: %w", err)
	}
	var daemons []string
	for _, g := range n.opts.Spec.Groups {
		for i := range g.Members {
			daemons = append(daemons, placement.DaemonID(g.Name, i))
		}
	}
	st := &query.Store{
		Self: n.key.ID, Logs: n.db.Logs(), Failures: n.db.Failures(), Snapshots: snaps,
		Audit: func() []api.AuditRecord {
			s, _ := n.fold.State()
			if s == nil {
				return nil
			}
			return s.Audit
		},
		Replica: func(name string) ([]query.ReplicaEntry, bool) {
			recs, ok := n.rt.ChainRecords(name)
			out := make([]query.ReplicaEntry, len(recs))
			for i, r := range recs {
				out[i] = query.ReplicaEntry{Seq: r.Seq, Daemon: r.Daemon, State: r.State}
			}
			return out, ok
		},
		Daemons: func() []string { return daemons },
	}
	return query.New(query.Config{Self: n.key.ID, Messenger: n.tr, Store: st, View: n.pub.load, Logf: n.opts.Logf, Serve: limits}), nil
}

// QueryStats are the node's MeshDB counters: queries it coordinated and
// fragments it served for its peers.
func (n *Node) QueryStats() query.Stats { return n.query.Stats() }

// Query runs a MeshDB query (node/query/lang) from this client's node.
func (c *Client) Query(ctx context.Context, q string, o api.QueryOptions) (*api.QueryRun, error) {
	return c.n.query.Query(ctx, q, o)
}

// History reads snapshot history through MeshDB: each node's own snapshot
// chain, from that node (or, when it does not answer, from this console's
// copy), so a deck sees every node's past, not only what it recorded
// itself. Node 0 asks every node; the result is newest first, each node's
// newest snapshot before the rest, at most n in all.
func (c *Client) History(ctx context.Context, node api.NodeID, before time.Time, n int) ([]snapshot.NodeSnapshot, error) {
	if n <= 0 {
		return nil, nil
	}
	n = min(n, chain.MaxHistoryRecords)
	if before.IsZero() {
		before = time.Now()
	}
	// Each node's newest n (one node), or its share of n (every node):
	// what crosses the mesh stays near n snapshots, not n per node.
	per := n
	if node == 0 {
		nodes := 0
		for _, nv := range c.n.pub.load().Nodes {
			if !nv.Observer {
				nodes++
			}
		}
		per = max(1, (n+nodes-1)/max(nodes, 1))
	}
	q := fmt.Sprintf("latest(snapshots, %d) where at < %q", per, before.UTC().Format(time.RFC3339Nano))
	if node != 0 {
		q += fmt.Sprintf(" and node = %q", node.String())
	}
	q += " | select node, at, snapshot"
	run, err := c.n.query.Query(ctx, q, api.QueryOptions{})
	if err != nil {
		return nil, err
	}
	rows, _, err := run.Collect()
	if err != nil {
		return nil, err
	}
	type rec struct {
		ns    snapshot.NodeSnapshot
		first bool // its node's newest
	}
	recs := make([]rec, 0, len(rows))
	newest := map[api.NodeID]time.Time{}
	for _, r := range rows {
		if at := r[1].Time(); at.After(newest[r[0].Node()]) {
			newest[r[0].Node()] = at
		}
	}
	for _, r := range rows {
		ns, err := gossip.DecodeSnapshot(r[2].B)
		if err != nil {
			continue // a record from an older codec: skip, never fail the page
		}
		at := r[1].Time()
		if ns.BuiltAt.IsZero() {
			ns.BuiltAt = at
		}
		recs = append(recs, rec{ns: *ns, first: at.Equal(newest[r[0].Node()])})
	}
	slices.SortStableFunc(recs, func(a, b rec) int {
		if a.first != b.first {
			if a.first {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.ns.BuiltAt.UnixNano(), a.ns.BuiltAt.UnixNano())
	})
	out := make([]snapshot.NodeSnapshot, 0, min(n, len(recs)))
	for _, r := range recs[:min(n, len(recs))] {
		out = append(out, r.ns)
	}
	slices.SortStableFunc(out, func(a, b snapshot.NodeSnapshot) int { return b.BuiltAt.Compare(a.BuiltAt) })
	return out, nil
}
