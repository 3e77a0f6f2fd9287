// Package meshos is the per-node behaviour plane: it supervises daemons,
// places daemons and chain replicas deterministically over the
// ClusterSnapshot, migrates daemons between nodes, runs the maintenance state
// machine, and gates every action through admit().
//
// # Placement
//
// Place (and PlaceWith) is a pure function of a ClusterSnapshot and the
// shared Spec: every node computes the same Assignment from the same
// snapshot. Daemon ids are DaemonID(group, index) and never change when a
// daemon moves; a group's chain is ChainName(group). Only Healthy, fresh
// nodes in Active or Recovery keep work; cordoned nodes keep what they run
// but take nothing new; capabilities are rules, spreading and saturation are
// preferences; what is placed stays placed. ApplyIntent overlays admin
// intent on a snapshot, OptionsFor turns evictions into exclusions, and
// ProjectedSaturation, CurrentAssignment and Diff feed the blast radius.
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
// One-shot generations already present in the first SetCluster are taken
// as acted on by an earlier life of the node, so a restarted node does not
// replay history. Invalidate-placement makes every node place the named
// node's daemons and replicas as if new for InvalidateHold (they may land
// in the same place), so new holders and move targets agree with it.
package meshos
