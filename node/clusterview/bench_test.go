package clusterview

import (
	"fmt"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/mesh"
	"github.com/deck-mesh/deck/node/snapshot"
)

// benchSnapshot is a realistic snapshot of a node running nDaemons daemons
// in 8 replica groups, holding 8 chains and seeing 16 peers.
func benchSnapshot(id identity.NodeID, nDaemons int, now time.Time) *snapshot.NodeSnapshot {
	ns := &snapshot.NodeSnapshot{ID: id, Label: "node-" + id.Short(), Addr: "127.0.0.1:7946", Generation: 1,
		BuiltAt: now, StartedAt: now.Add(-time.Hour)}
	for i := range nDaemons {
		ns.Daemons = append(ns.Daemons, snapshot.Daemon{ID: fmt.Sprintf("d-%s-%03d", id.Short(), i), Node: id,
			Lineage: snapshot.Lineage{Kind: snapshot.GroupReplica, Group: fmt.Sprintf("g%d", i%8), Index: i / 8}})
	}
	for i := range 8 {
		ns.Replicas = append(ns.Replicas, snapshot.Replica{Chain: fmt.Sprintf("g%d", i), Role: snapshot.ReplicaRole(i % 2), Seq: uint64(1000 + i)})
	}
	for i := range 16 {
		ns.Peers = append(ns.Peers, snapshot.PeerView{Peer: identity.NodeID(0x1000 + i), Health: snapshot.Healthy, RTT: time.Millisecond, Direct: i < 2})
	}
	return ns
}

// BenchmarkFold100 folds a 100-node cluster (20 daemons, 8 replicas and 16
// peer views per node).
func BenchmarkFold100(b *testing.B) {
	now := time.Now()
	in := Input{Cluster: "bench", Now: now}
	for i := range 100 {
		id := identity.NodeID(0x1000 + i)
		if i == 0 {
			in.Self = id
		}
		ns := benchSnapshot(id, 20, now)
		for j := range ns.Peers {
			ns.Peers[j].Peer = identity.NodeID(0x1000 + (i+j+1)%100)
		}
		in.Snapshots = append(in.Snapshots, gossip.Verified{Snapshot: ns, Epoch: 1, Seq: 1, ReceivedAt: now})
		in.Peers = append(in.Peers, mesh.PeerInfo{ID: id, Direct: i%10 == 0, Health: mesh.Healthy, RTT: time.Millisecond})
	}
	for i := range 8 {
		in.Chains = append(in.Chains, snapshot.Chain{Name: fmt.Sprintf("g%d", i), Desired: 3})
	}
	b.ReportAllocs()
	for b.Loop() {
		if cs := Fold(in); len(cs.Nodes) != 100 {
			b.Fatalf("%d nodes", len(cs.Nodes))
		}
	}
}
