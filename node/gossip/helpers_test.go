package gossip

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/identity/identitytest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// testKey is node i's reproducible key.
func testKey(t testing.TB, i int) *identity.Key {
	t.Helper()
	return identitytest.Key(t, fmt.Sprintf("gossip-%d", i))
}

// enumSizes lists every one-byte enum type of package snapshot with its
// cardinality. randomFill fails on a uint8 type missing here, so an enum
// added to NodeSnapshot without codec support is caught.
var enumSizes = map[reflect.Type]int{
	reflect.TypeFor[snapshot.Health]():            numHealth,
	reflect.TypeFor[snapshot.MaintState]():        numMaintState,
	reflect.TypeFor[snapshot.GroupKind]():         numGroupKind,
	reflect.TypeFor[snapshot.Lifecycle]():         numLifecycle,
	reflect.TypeFor[snapshot.DaemonHealthState](): numDaemonHealth,
	reflect.TypeFor[snapshot.RestartKind]():       numRestartKind,
	reflect.TypeFor[snapshot.ReplicaRole]():       numReplicaRole,
	reflect.TypeFor[snapshot.MigrationPhase]():    numMigrationPhase,
	reflect.TypeFor[snapshot.OverflowState]():     numOverflowState,
	reflect.TypeFor[snapshot.BlobRole]():          numBlobRole,
	reflect.TypeFor[snapshot.Visibility]():        numVisibility,
}

// randomFill sets every field reachable from v (a pointer) to a random
// non-zero value the codec can carry: times on whole milliseconds in UTC,
// finite floats, enums in range, strings and lists within bounds (lists of
// 1..maxList items). It walks the type by reflection, so a field added to
// snapshot.NodeSnapshot is filled too, and a codec that forgets it fails
// the round-trip test.
func randomFill(t testing.TB, r *rand.Rand, v reflect.Value, maxList int) {
	t.Helper()
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		ms := r.Int64N(4_000_000_000_000) - 1_000_000_000_000
		v.Set(reflect.ValueOf(time.UnixMilli(ms).UTC()))
		return
	case reflect.TypeFor[time.Duration]():
		v.SetInt(r.Int64N(int64(10*time.Second)) + 1)
		return
	case reflect.TypeFor[[]byte]():
		// The only byte slices in a snapshot are ed25519 keys.
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		v.SetBytes(b)
		return
	}
	if n, ok := enumSizes[v.Type()]; ok {
		v.SetUint(uint64(1 + r.IntN(n-1)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			randomFill(t, r, v.Field(i), maxList)
		}
	case reflect.Pointer:
		randomFill(t, r, v.Elem(), maxList)
	case reflect.Array:
		if v.Type().Elem().Kind() != reflect.Uint8 {
			t.Fatalf("randomFill: unsupported array type %s", v.Type())
		}
		for i := range v.Len() {
			v.Index(i).SetUint(uint64(1 + r.IntN(255)))
		}
	case reflect.Slice:
		n := 1 + r.IntN(maxList)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			randomFill(t, r, s.Index(i), maxList)
		}
		v.Set(s)
	case reflect.String:
		const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_.:/ éλ→"
		runes := []rune(alphabet)
		n := 1 + r.IntN(24)
		b := make([]rune, n)
		for i := range b {
			b[i] = runes[r.IntN(len(runes))]
		}
		v.SetString(string(b))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float64:
		v.SetFloat(r.Float64()*2 - 0.5 + 1e-9)
	case reflect.Int, reflect.Int64:
		x := r.Int64N(1_000_000) - 500_000
		if x == 0 {
			x = 7
		}
		v.SetInt(x)
	case reflect.Uint64:
		v.SetUint(r.Uint64() | 1)
	case reflect.Uint8:
		t.Fatalf("randomFill: %s is a one-byte type the codec does not know as an enum; add it to the codec and enumSizes", v.Type())
	default:
		t.Fatalf("randomFill: unsupported field type %s (kind %s): extend the codec and this filler", v.Type(), v.Kind())
	}
}

// randomSnapshot is a fully populated snapshot of node id.
func randomSnapshot(t testing.TB, r *rand.Rand, id identity.NodeID, maxList int) *snapshot.NodeSnapshot {
	t.Helper()
	ns := &snapshot.NodeSnapshot{}
	randomFill(t, r, reflect.ValueOf(ns), maxList)
	ns.ID = id
	return ns
}

// nodeSnapshot is a realistic snapshot of a node running nDaemons daemons,
// built the way a node builds one.
func nodeSnapshot(id identity.NodeID, gen uint64, nDaemons int, now time.Time) *snapshot.NodeSnapshot {
	ns := &snapshot.NodeSnapshot{
		ID:           id,
		Label:        fmt.Sprintf("node-%s", id.Short()),
		Addr:         "127.0.0.1:7946",
		Version:      "deck 0.1.0",
		Generation:   gen,
		BuiltAt:      now,
		StartedAt:    now.Add(-time.Hour),
		Capabilities: []string{"gpu", "ssd"},
		Resources:    snapshot.Resources{CPULoad: 0.42, MemUsed: 0.31, DiskUsed: 0.2, Saturation: 0.44, Trend: make([]float64, 30)},
		Maintenance:  snapshot.Maintenance{State: snapshot.MaintActive, Since: now.Add(-time.Hour)},
		Counters:     snapshot.Counters{PacketsIn: 123456, PacketsOut: 654321, BytesIn: 1 << 30, BytesOut: 1 << 29},
	}
	for i := range ns.Resources.Trend {
		ns.Resources.Trend[i] = float64(i) / 30
	}
	ns.Daemons = make([]snapshot.Daemon, nDaemons)
	for i := range ns.Daemons {
		ns.Daemons[i] = snapshot.Daemon{
			ID:         fmt.Sprintf("d-%s-%03d", id.Short(), i),
			Name:       fmt.Sprintf("inference-%d", i),
			Kind:       "inference",
			Lineage:    snapshot.Lineage{Kind: snapshot.GroupReplica, Group: fmt.Sprintf("g%d", i%8), Index: i / 8},
			Node:       id,
			Lifecycle:  snapshot.LifecycleRunning,
			Health:     snapshot.DaemonHealthy,
			Saturation: 0.3,
			StartedAt:  now.Add(-time.Duration(i) * time.Minute),
		}
	}
	for i := range 8 {
		ns.Replicas = append(ns.Replicas, snapshot.Replica{Chain: fmt.Sprintf("g%d", i), Role: snapshot.ReplicaRole(i % 2), Seq: uint64(1000 + i)})
	}
	for i := range 16 {
		ns.Peers = append(ns.Peers, snapshot.PeerView{Peer: identity.NodeID(0x1000 + i), Health: snapshot.Healthy, RTT: time.Millisecond, Direct: i < 2})
	}
	ns.Datafort = snapshot.Datafort{Enabled: true, Capacity: 8 << 30, Used: 3 << 30, Chunks: 24576, Blobs: 12,
		ReadsPerSec: 40.5, WritesPerSec: 3.25, BytesInPerSec: 1 << 20, BytesOutPerSec: 5 << 20, Errors: 1, Repaired: 1}
	for i := range 4 {
		b := snapshot.BlobHolding{Size: uint64(i+1) << 27, Replicas: 2, Role: snapshot.BlobRole(i % 3), Pinned: i == 0,
			Heat: float64(i) / 2, Name: fmt.Sprintf("dataset-%d.tar", i), Operator: 0x5a5a, StoredAt: now.Add(-time.Duration(i) * time.Hour)}
		b.Hash[0], b.Hash[31] = byte(i+1), 0xb1
		if i > 0 {
			b.Parent[0] = byte(i)
		}
		ns.Blobs = append(ns.Blobs, b)
	}
	return ns
}

// normalize is what the codec keeps of a snapshot: times on whole
// milliseconds in UTC, empty lists as nil.
func normalize(ns *snapshot.NodeSnapshot) *snapshot.NodeSnapshot {
	c := *ns
	v := reflect.ValueOf(&c).Elem()
	normalizeValue(v)
	return &c
}

func normalizeValue(v reflect.Value) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		t := v.Interface().(time.Time)
		v.Set(reflect.ValueOf(time.UnixMilli(t.UnixMilli()).UTC()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			normalizeValue(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(s, v)
		for i := range s.Len() {
			normalizeValue(s.Index(i))
		}
		v.Set(s)
	}
}
