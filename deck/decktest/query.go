package decktest

import (
	"context"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/query"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Query runs MeshDB's own planner and executor over the fixture: each
// fixture node's logs, failures and snapshot history are in-memory chains
// that node holds (query.Config.Stores), the admin ledger is the fixture's
// AUDIT, and the plan's holders come from the fixture's view. The clock is
// the fixture's, so plans and results are stable for golden files.
func (c *Client) Query(ctx context.Context, q string, o api.QueryOptions) (*api.QueryRun, error) {
	now := c.now()
	c.mu.Lock()
	view := c.publishLocked()
	logs := slices.Clone(c.logs)
	fails := slices.Clone(c.failures)
	hist := slices.Clone(c.history)
	audit := slices.Clone(c.audit)
	c.mu.Unlock()
	var daemons []string
	for _, g := range view.Groups {
		daemons = append(daemons, g.Members...)
	}
	stores := map[identity.NodeID]*query.Store{}
	storeOf := func(id identity.NodeID) *query.Store {
		if s := stores[id]; s != nil {
			return s
		}
		s := &query.Store{Self: id, Logs: &query.MemLog{}, Failures: &query.MemLog{}, Snapshots: &query.MemLog{},
			Audit: func() []api.AuditRecord { return audit }, Daemons: func() []string { return daemons }}
		stores[id] = s
		return s
	}
	for _, r := range logs {
		storeOf(r.Node).Logs.(*query.MemLog).Append(r.At.UnixNano(), chain.AppendLogRecord(nil, r))
	}
	for _, f := range fails {
		storeOf(f.Node).Failures.(*query.MemLog).Append(f.At.UnixNano(), chain.AppendFailureRecord(nil, f))
	}
	slices.SortStableFunc(hist, func(a, b snapshot.NodeSnapshot) int { return a.BuiltAt.Compare(b.BuiltAt) })
	for _, h := range hist {
		b, err := gossip.EncodeSnapshot(&h)
		if err != nil {
			continue
		}
		storeOf(h.ID).Snapshots.(*query.MemLog).Append(h.BuiltAt.UnixNano(), chain.SnapshotPayload(h.ID, h.BuiltAt, b))
	}
	for _, n := range view.Nodes {
		storeOf(n.ID)
	}
	e := query.New(query.Config{Self: view.Self, Store: storeOf(view.Self), View: func() *snapshot.ClusterSnapshot { return view },
		Now: func() time.Time { return now }, Stores: func(h identity.NodeID) *query.Store { return stores[h] }})
	return e.Query(ctx, q, o)
}
