package blob

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/messaging/messagingtest"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// rig is n blob services on the one in-memory hub, each on its own Badger
// database in a temp dir, seeing one cluster view in which the datafort
// ones are healthy datafort nodes, and one registered operator.
type rig struct {
	t    testing.TB
	hub  *messagingtest.Hub
	op   identity.Signer
	ids  []identity.NodeID
	svcs map[identity.NodeID]*Service
	view atomic.Pointer[snapshot.ClusterSnapshot]
}

type rigOpts struct {
	datafort []bool // per node; nil: all
	budget   uint64
	timers   Timers
	now      func() time.Time // nil: time.Now
}

func newRig(t testing.TB, n int, o rigOpts) *rig {
	t.Helper()
	opKey := identitytest.Key(t, "blob-operator")
	r := &rig{t: t, hub: messagingtest.NewHub(t, messagingtest.Config{}), op: identity.KeySigner{K: opKey}, svcs: map[identity.NodeID]*Service{}}
	if o.timers.ReconcileInterval == 0 {
		o.timers.ReconcileInterval = time.Hour // tests of the policy set their own
	}
	if o.timers.GCInterval == 0 {
		o.timers.GCInterval = time.Hour
	}
	cs := &snapshot.ClusterSnapshot{Cluster: "test", BuiltAt: time.Now()}
	operator := func(id identity.NodeID) (ed25519.PublicKey, bool) {
		if id == opKey.ID {
			return opKey.Public, true
		}
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i := range n {
		id := identitytest.Key(t, "blob-node-"+string(rune('a'+i))).ID
		r.ids = append(r.ids, id)
		df := o.datafort == nil || o.datafort[i]
		budget := o.budget
		if budget == 0 {
			budget = 1 << 30
		}
		db := openDB(t, t.TempDir())
		t.Cleanup(func() { db.Close() })
		s, err := New(Config{
			Self: id, Messenger: r.hub.Join(id), Space: db.BlobSpace(), Datafort: df, Budget: budget,
			View: func() *snapshot.ClusterSnapshot { return r.view.Load() }, Operator: operator,
			Draining: func() bool {
				v := r.view.Load().Node(id)
				return v != nil && v.Maintenance.State == snapshot.MaintEntering
			},
			Logf: t.Logf, Timers: o.timers, Now: o.now,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.hub.Node(id).Handle(messaging.ChanBlob, s.Handle)
		r.svcs[id] = s
		v := snapshot.NodeView{Health: snapshot.Healthy}
		v.ID, v.Maintenance.State = id, snapshot.MaintActive
		if df {
			v.Capabilities = []string{placement.CapabilityDatafort}
			v.Datafort = snapshot.Datafort{Enabled: true, Capacity: budget}
		}
		cs.Nodes = append(cs.Nodes, v)
	}
	r.view.Store(cs)
	for _, id := range r.ids {
		go r.svcs[id].Run(ctx)
	}
	return r
}

func (r *rig) svc(i int) *Service { return r.svcs[r.ids[i]] }

// put stores data through node i and waits for replicas holders.
func (r *rig) put(i int, data []byte, replicas int) Hash {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := r.svc(i).Put(ctx, bytes.NewReader(data), putOpts(replicas), r.op)
	if err != nil {
		r.t.Fatalf("put through %s: %v", r.ids[i], err)
	}
	return Hash(info.Hash)
}

// holders lists the nodes whose store holds h.
func (r *rig) holders(h Hash) []identity.NodeID {
	var out []identity.NodeID
	for _, id := range r.ids {
		if _, err := r.svcs[id].store.Record(h); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// setNode changes node id's view (every service sees the change).
func (r *rig) setNode(id identity.NodeID, change func(v *snapshot.NodeView)) {
	cur := r.view.Load()
	next := *cur
	next.Nodes = append([]snapshot.NodeView(nil), cur.Nodes...)
	for i := range next.Nodes {
		if next.Nodes[i].ID == id {
			change(&next.Nodes[i])
		}
	}
	r.view.Store(&next)
}
