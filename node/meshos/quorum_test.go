package meshos

import (
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/mesh/meshtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// TestQuorumCountsOnlyNodesHeardRecently: right after a cut, the far side
// still shows Healthy for a moment (Health lags silence by seconds) while
// the leader's claim is already gone. A node alone on the small side must
// not see a majority then; a node that keeps hearing its peers must.
func TestQuorumCountsOnlyNodesHeardRecently(t *testing.T) {
	now := time.Unix(5000, 0)
	rt, err := New(Config{Self: 1, Messenger: meshtest.NewHub(t, meshtest.Config{}).Join(1), Clock: func() time.Time { return now },
		Timers: Timers{QuorumHeardWithin: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	view := func(silences ...time.Duration) *snapshot.ClusterSnapshot {
		cs := &snapshot.ClusterSnapshot{Nodes: []snapshot.NodeView{{NodeSnapshot: snapshot.NodeSnapshot{ID: 1}, Health: snapshot.Healthy}}}
		for i, s := range silences {
			cs.Nodes = append(cs.Nodes, snapshot.NodeView{NodeSnapshot: snapshot.NodeSnapshot{ID: NodeID(i + 2)},
				Health: snapshot.Healthy, HeardAt: now.Add(-s)})
		}
		return cs
	}
	for _, tc := range []struct {
		name     string
		silences []time.Duration
		want     bool
	}{
		{"all heard a heartbeat ago", []time.Duration{time.Second, time.Second, 900 * time.Millisecond, time.Second}, true},
		{"one missed heartbeat still counts", []time.Duration{2 * time.Second, time.Second, 3 * time.Second, 4 * time.Second}, true},
		{"cut off: Healthy but silent 2.5 s", []time.Duration{2500 * time.Millisecond, 2600 * time.Millisecond, 3 * time.Second, 3 * time.Second}, false},
		{"two of four heard: with self, three of five", []time.Duration{time.Second, 3 * time.Second, 3 * time.Second, 500 * time.Millisecond}, true},
		{"one of four heard", []time.Duration{time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}, false},
	} {
		rt.mu.Lock()
		rt.view = view(tc.silences...)
		got := rt.quorumLocked()
		rt.mu.Unlock()
		if got != tc.want {
			t.Errorf("%s: quorum %v, want %v", tc.name, got, tc.want)
		}
	}
}
