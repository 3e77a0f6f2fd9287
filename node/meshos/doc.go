// Package meshos is the per-node behaviour plane: it supervises daemons,
// places daemons and chain replicas deterministically over the
// ClusterSnapshot, migrates daemons between nodes, runs the maintenance state
// machine, and gates every action through admit().
//
// # Placement
//
// Placement itself is pure and lives in node/placement (Spec, ClusterIntent,
// PlaceWith); this package calls it each tick over its view of the cluster
// and acts on the answer. The blast-radius preview in node/command runs the
// same function on a projected snapshot. Spec, ClusterIntent and the
// Assignment types are aliases of placement's, not copies.
//
// # Runtime
//
//	rt, err := meshos.New(meshos.Config{Self: id, Spec: spec, Factories: f,
//	        Messenger: m, Logs: logChain, Failures: failureChain})
//	go rt.Run(ctx)                 // one reconcile pass per tick (500 ms)
//	rt.SetCluster(cs, intent)      // from the gossip fold + the admin ledger fold
//	rt.SetPeers(peers)             // from membership: RTT, health (avoid list, edges)
//	rt.SetCounters(c)              // from the transport
//	s := rt.Latest()               // lock-free, immutable NodeSnapshot
//	<-rt.Changes()                 // structural change: sign and gossip s
//
// Each tick the runtime reaps finished work, refreshes the avoid list (RTT
// above 250 ms → avoided for 5 minutes), executes one-shot intent
// generations (restart, invalidate, drop replicas, evictions, cutovers,
// killed migrations, avoid-list clears), steps the maintenance state
// machine, places over its view of the cluster and reconciles local daemons
// and chain replicas toward the assignment, settles chain leadership, and
// publishes the snapshot. Migrations and chain replication ride
// messaging.ChanMigration (wire.go: bounded, versioned, fuzzed).
//
// Other nodes are believed only as far as they are entitled (attribution.go):
// checkpoints come from the daemon's host, migration offers from the copy
// that hands the daemon over, fork points from the parent chain's holders,
// and another node's claim to run a daemon cannot stop, or draw the state
// of, a copy this node started before that claim appeared.
//
// One-shot generations already present in the first SetCluster are taken
// as acted on by an earlier life of the node, so a restarted node does not
// replay history. Invalidate-placement makes every node place the named
// node's daemons and replicas as if new for InvalidateHold (they may land
// in the same place), so new holders and move targets agree with it.
package meshos
