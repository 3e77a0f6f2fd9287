package node_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/config"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/nodetest"
	nplacement "github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
)

// Dataforts on real nodes: real UDP sockets, Noise sessions, gossip, each
// node's own Badger database in a temp dir, placement from the gossiped
// view.

// blobMesh is n real nodes; datafort[i] says which offer the capability.
type blobMesh struct {
	t       testing.TB
	cluster *config.Cluster
	op      *identity.Key
	nodes   []*node.Node
	opts    []node.Options
}

var blobTransport = transport.Config{HeartbeatInterval: 100 * time.Millisecond, UnreachableAfter: 1500 * time.Millisecond}

func startBlobMesh(t testing.TB, datafort []bool) *blobMesh {
	t.Helper()
	op, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := config.NewCluster("test", nil, []config.Operator{config.NewOperator("alice", op.Public)}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := &blobMesh{t: t, cluster: cl, op: op}
	for i, df := range datafort {
		key, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		o := node.Options{
			Cluster: cl, Key: key, DataDir: t.TempDir(), Label: "n" + string(rune('1'+i)),
			Version: "test", CertifyWith: identity.KeySigner{K: op}, Spec: meshos.Spec{},
			Transport: blobTransport, Blobs: blob.Timers{ReconcileInterval: 200 * time.Millisecond},
			MeshOS: meshos.Timers{RecoveryWindow: time.Second},
		}
		if df {
			o.Capabilities = []string{nplacement.CapabilityDatafort}
		}
		if i > 0 {
			o.Bootstrap = []string{m.nodes[0].Addr()}
		}
		m.opts = append(m.opts, o)
		m.nodes = append(m.nodes, m.start(i))
	}
	for _, nd := range m.nodes {
		nodetest.Eventually(t, "every node sees every datafort", func() bool { return dataforts(nd.Cluster()) == count(datafort) })
	}
	return m
}

func (m *blobMesh) start(i int) *node.Node {
	m.t.Helper()
	nd, err := node.Start(context.Background(), m.opts[i])
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { nd.Close() })
	return nd
}

func count(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// dataforts counts the healthy datafort nodes a view shows.
func dataforts(cs *snapshot.ClusterSnapshot) int {
	n := 0
	for _, c := range nplacement.BlobCandidates(cs, [32]byte{}, 0) {
		if c.Host {
			n++
		}
	}
	return n
}

func (m *blobMesh) client(i int) api.Blobs {
	m.t.Helper()
	cl, err := m.nodes[i].NewClient(identity.KeySigner{K: m.op}, "alice")
	if err != nil {
		m.t.Fatal(err)
	}
	return cl.Blobs()
}

func (m *blobMesh) put(i int, data []byte, replicas int) api.BlobInfo {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := m.client(i).Put(ctx, bytes.NewReader(data), api.BlobPutOptions{Replicas: replicas, Name: "t.bin"})
	if err != nil {
		m.m(i, "put", err)
	}
	return info
}

func (m *blobMesh) m(i int, what string, err error) {
	m.t.Helper()
	m.t.Fatalf("%s through %s: %v", what, m.nodes[i].ID(), err)
}

// holders are the live nodes whose store holds h.
func (m *blobMesh) holders(h api.BlobHash) []identity.NodeID {
	var out []identity.NodeID
	for _, nd := range m.nodes {
		select {
		case <-nd.Done():
			continue
		default:
		}
		if _, err := nd.Blobs().Store().Record(blob.Hash(h)); err == nil {
			out = append(out, nd.ID())
		}
	}
	return out
}

func (m *blobMesh) index(id identity.NodeID) int {
	return slices.IndexFunc(m.nodes, func(nd *node.Node) bool { return nd.ID() == id })
}

func blobBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A blob put through one node is read back, byte for byte, through another
// that holds nothing, over real UDP.
func TestBlobPutOnOneNodeGetFromAnother(t *testing.T) {
	m := startBlobMesh(t, []bool{true, true, true, false})
	data := blobBytes(1, 5*blob.ChunkBytes+777)
	info := m.put(0, data, 2)
	if got := m.holders(info.Hash); len(got) != 2 {
		t.Fatalf("holders %v", got)
	}
	var out bytes.Buffer
	got, err := m.client(3).Get(context.Background(), info.Hash, &out, nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) || got.Hash != info.Hash {
		t.Fatalf("read %d bytes (identical %v)", out.Len(), bytes.Equal(out.Bytes(), data))
	}
	// The blob shows in every node's cluster view, with both holders.
	nodetest.Eventually(t, "blob in the cluster view", func() bool {
		cs := m.nodes[3].Cluster()
		i := slices.IndexFunc(cs.Blobs, func(b snapshot.BlobView) bool { return b.Hash == info.Hash })
		return i >= 0 && len(cs.Blobs[i].Holders) == 2 && cs.Blobs[i].Replicas == 2
	})
}

// A holder killed in the middle of a fetch: the reader carries on from the
// other holder and the bytes are identical.
func TestBlobHolderKilledMidFetch(t *testing.T) {
	m := startBlobMesh(t, []bool{true, true, false})
	data := blobBytes(2, 48*blob.ChunkBytes)
	info := m.put(0, data, 2)
	var out bytes.Buffer
	var killed identity.NodeID
	w := writer(func(p []byte) (int, error) {
		if killed == 0 && out.Len() >= 8*blob.ChunkBytes {
			// Kill the holder that served the most so far.
			a, b := m.nodes[0].Blobs().Stats().BytesOut, m.nodes[1].Blobs().Stats().BytesOut
			victim := m.nodes[0]
			if b > a {
				victim = m.nodes[1]
			}
			killed = victim.ID()
			victim.Close()
		}
		return out.Write(p)
	})
	if _, err := m.client(2).Get(context.Background(), info.Hash, w, nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if killed == 0 || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("killed %s; %d bytes, identical %v", killed, out.Len(), bytes.Equal(out.Bytes(), data))
	}
}

type writer func([]byte) (int, error)

func (f writer) Write(p []byte) (int, error) { return f(p) }

// A byte flipped in one replica's chunk on disk is caught when that node
// reads the blob, and repaired from the other replica.
func TestBlobCorruptChunkOnDiskRepairedFromReplica(t *testing.T) {
	m := startBlobMesh(t, []bool{true, true})
	data := blobBytes(3, 3*blob.ChunkBytes)
	info := m.put(0, data, 2)
	victim := 1
	m.nodes[victim].Close()
	flipChunkByte(t, filepath.Join(m.opts[victim].DataDir, "chain"))
	m.opts[victim].Bootstrap = []string{m.nodes[0].Addr()}
	m.nodes[victim] = m.start(victim)
	nodetest.Eventually(t, "restarted node rejoined", func() bool { return dataforts(m.nodes[victim].Cluster()) == 2 })
	var out bytes.Buffer
	if _, err := m.client(victim).Get(context.Background(), info.Hash, &out, nil); err != nil {
		t.Fatalf("get on the node with the rotten chunk: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("read back differs")
	}
	st := m.nodes[victim].Blobs().Stats()
	if st.Store.Corrupt == 0 || st.Repaired == 0 {
		t.Fatalf("corrupt %d, repaired %d", st.Store.Corrupt, st.Repaired)
	}
	// Read again: from disk, intact, nothing more to repair.
	out.Reset()
	if _, err := m.client(victim).Get(context.Background(), info.Hash, &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("second read: %v", err)
	}
	if again := m.nodes[victim].Blobs().Stats(); again.Repaired != st.Repaired {
		t.Fatalf("repaired again: %d → %d", st.Repaired, again.Repaired)
	}
}

// flipChunkByte flips one byte of the first chunk in a closed node's
// database, as bit rot would: node/blob keeps chunks under 'c' in the blob
// keyspace.
func flipChunkByte(t *testing.T, dir string) {
	t.Helper()
	db, err := chain.Open(chain.Config{Dir: dir, RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs := db.BlobSpace()
	var key, val []byte
	if err := bs.Scan([]byte{'c'}, nil, true, func(it chain.BlobItem) bool {
		key, val = bytes.Clone(it.Key), bytes.Clone(it.Value)
		return false
	}); err != nil || key == nil {
		t.Fatalf("no chunk on disk: %v", err)
	}
	val[len(val)/2] ^= 0x10
	if err := bs.Write(context.Background(), []chain.BlobOp{{Key: key, Value: val}}); err != nil {
		t.Fatal(err)
	}
}

// When a holder dies, the blob is replicated again to another datafort
// until it has its desired replicas on live nodes.
func TestBlobReReplicatedAfterNodeDies(t *testing.T) {
	m := startBlobMesh(t, []bool{true, true, true, false})
	info := m.put(3, blobBytes(4, 6*blob.ChunkBytes), 2)
	first := m.holders(info.Hash)
	if len(first) != 2 {
		t.Fatalf("holders %v", first)
	}
	m.nodes[m.index(first[0])].Close()
	nodetest.Eventually(t, "two live holders again", func() bool { return len(m.holders(info.Hash)) == 2 },
		func() string { return "holders " + idList(m.holders(info.Hash)) })
	var out bytes.Buffer
	if _, err := m.client(3).Get(context.Background(), info.Hash, &out, nil); err != nil {
		t.Fatal(err)
	}
}

func idList(ids []identity.NodeID) string {
	s := ""
	for _, id := range ids {
		s += id.String() + " "
	}
	return s
}

// A drain previews the blob bytes that must leave the node; once committed
// they leave, land on the other dataforts, and the node reaches
// Maintenance holding none.
func TestBlobDrainMovesReplicasAsPreviewed(t *testing.T) {
	m := startBlobMesh(t, []bool{true, true, true, false})
	var infos []api.BlobInfo
	for i := range 3 {
		infos = append(infos, m.put(3, blobBytes(uint64(10+i), (i+2)*blob.ChunkBytes), 2))
	}
	// The node holding the most.
	var drained *node.Node
	for _, nd := range m.nodes[:3] {
		if drained == nil || nd.Blobs().Store().Usage().Used > drained.Blobs().Store().Usage().Used {
			drained = nd
		}
	}
	used := drained.Blobs().Store().Usage().Used
	held := 0
	for _, in := range infos {
		if slices.Contains(m.holders(in.Hash), drained.ID()) {
			held++
		}
	}
	cl, err := m.nodes[3].NewClient(identity.KeySigner{K: m.op}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the view shows the drained node's store", func() bool {
		v := m.nodes[3].Cluster().Node(drained.ID())
		return v != nil && v.Datafort.Used == used && v.Datafort.Blobs == uint64(held)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	br, err := cl.Preview(ctx, api.Action{Verb: api.VerbDrain, Node: drained.ID(), Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if br.BlobBytes != used || br.BlobReplicas != held {
		t.Fatalf("preview: %d blob replicas, %d bytes; the node holds %d, %d bytes", br.BlobReplicas, br.BlobBytes, held, used)
	}
	var others uint64
	for _, nd := range m.nodes[:3] {
		if nd != drained {
			others += nd.Blobs().Store().Usage().Used
		}
	}
	if _, err := cl.Admin().Drain(ctx, drained.ID(), time.Minute); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, "the drained node reaches maintenance holding no blob", func() bool {
		own := drained.Stats().Own
		return own.Maintenance.State == snapshot.MaintMaintenance && drained.Blobs().Store().Usage().Chunks == 0
	}, func() string {
		u := drained.Blobs().Store().Usage()
		return "state " + drained.Stats().Own.Maintenance.State.String() + ", chunks " + itoa(int(u.Chunks))
	})
	var after uint64
	for _, nd := range m.nodes[:3] {
		if nd != drained {
			after += nd.Blobs().Store().Usage().Used
		}
	}
	if after-others != br.BlobBytes {
		t.Fatalf("the other dataforts took %d bytes; the preview said %d", after-others, br.BlobBytes)
	}
	for _, in := range infos {
		if hs := m.holders(in.Hash); len(hs) != 2 || slices.Contains(hs, drained.ID()) {
			t.Fatalf("%s held by %v", in.Hash.Short(), hs)
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// While one node streams a large blob to another, heartbeats and gossip
// between them keep flowing: the transfer rides its own queue, sent only
// while nothing else waits, and the reader asks for a bounded window.
func TestBlobTransferDoesNotStarveHeartbeatsOrGossip(t *testing.T) {
	m := startBlobMesh(t, []bool{true, false})
	holder, reader := m.nodes[0], m.nodes[1]
	data := blobBytes(5, 32<<20)
	info := m.put(0, data, 1)
	hbOut0 := holder.Stats().Transport.HeartbeatsOut
	hbIn0 := reader.Stats().Transport.HeartbeatsIn
	gossip0 := reader.Stats().Gossip.DigestsReceived + reader.Stats().Gossip.Received
	served0 := holder.Blobs().Stats().BytesOut
	rounds := 0
	// Transfer until the holder has sent at least 30 heartbeats meanwhile.
	for holder.Stats().Transport.HeartbeatsOut-hbOut0 < 30 {
		n, err := m.client(1).Get(context.Background(), info.Hash, discard{}, nil)
		if err != nil {
			t.Fatalf("get %d: %v", rounds, err)
		}
		_ = n
		rounds++
		if v := reader.Cluster().Node(holder.ID()); v == nil || v.Health != snapshot.Healthy {
			t.Fatalf("after %d transfers the reader sees the holder %v", rounds, v.Health)
		}
	}
	sent := holder.Stats().Transport.HeartbeatsOut - hbOut0
	got := reader.Stats().Transport.HeartbeatsIn - hbIn0
	gossip := reader.Stats().Gossip.DigestsReceived + reader.Stats().Gossip.Received - gossip0
	moved := holder.Blobs().Stats().BytesOut - served0
	t.Logf("%d transfers, %d MiB: %d heartbeats sent, %d handled; %d gossip messages", rounds, moved>>20, sent, got, gossip)
	if moved < uint64(len(data)) {
		t.Fatalf("only %d bytes moved", moved)
	}
	// Heartbeats in flight at either end of the window may fall outside it.
	if got+2 < sent*9/10 {
		t.Fatalf("%d of %d heartbeats handled during the transfer", got, sent)
	}
	if gossip == 0 {
		t.Fatal("no gossip handled during the transfer")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
