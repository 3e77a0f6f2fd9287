package placement

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/deck-mesh/deck/node/snapshot"
)

// CapabilityDatafort marks a node that holds blobs for the mesh.
const CapabilityDatafort = "datafort"

// BlobCandidate is a datafort node's standing for one blob's placement.
type BlobCandidate struct {
	ID NodeID
	// Keep: it may keep a replica it holds: reachable with a fresh snapshot
	// and not draining. A Suspect node keeps its replicas (moving data
	// because of one missed heartbeat would make blobs flap between nodes);
	// only an Unreachable one loses them.
	Keep bool
	// Host: it may take a new replica (Keep, not cordoned, not overflowing,
	// room for the blob).
	Host bool
	// Score orders candidates for this blob (rendezvous hashing): higher
	// first.
	Score uint64
}

// BlobCandidates are the datafort nodes of cs in the blob's rendezvous
// order, with their standing for a blob of size bytes. The order depends
// only on the blob's hash and the node ids, so every node computes the same
// one, and a node joining or leaving moves only the blobs it ranks near the
// top for.
func BlobCandidates(cs *snapshot.ClusterSnapshot, blob [32]byte, size uint64) []BlobCandidate {
	if cs == nil {
		return nil
	}
	var out []BlobCandidate
	for i := range cs.Nodes {
		v := &cs.Nodes[i]
		if v.Observer || !v.Datafort.Enabled || !slices.Contains(v.Capabilities, CapabilityDatafort) || !v.ID.Valid() {
			continue
		}
		st := v.Maintenance.State
		keep := v.Health != snapshot.Unreachable && !v.Stale && (st == snapshot.MaintActive || st == snapshot.MaintRecovery)
		d := &v.Datafort
		room := d.Capacity > d.Used && d.Capacity-d.Used >= size
		out = append(out, BlobCandidate{
			ID: v.ID, Keep: keep,
			Host:  keep && v.Health == snapshot.Healthy && !v.Cordoned && d.Overflow == snapshot.OverflowNone && room,
			Score: blobScore(blob, v.ID),
		})
	}
	slices.SortFunc(out, func(a, b BlobCandidate) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

// PlaceBlob is who should hold a blob: the holders that may keep it, in
// rendezvous order, up to desired (what is placed stays placed), then the
// hosts that may take it in the same order until desired are chosen. It is
// pure: the same view, blob and holders give the same answer everywhere.
// Fewer than desired come back when too few nodes qualify.
func PlaceBlob(cs *snapshot.ClusterSnapshot, blob [32]byte, size uint64, desired int, holders []NodeID) []NodeID {
	cands := BlobCandidates(cs, blob, size)
	out := make([]NodeID, 0, desired)
	for _, c := range cands {
		if len(out) < desired && c.Keep && slices.Contains(holders, c.ID) {
			out = append(out, c.ID)
		}
	}
	for _, c := range cands {
		if len(out) < desired && c.Host && !slices.Contains(out, c.ID) {
			out = append(out, c.ID)
		}
	}
	return out
}

// blobScore is the rendezvous weight of node for blob: a 64-bit mix of the
// blob's first 8 bytes and the node id (splitmix64's finaliser), so scores
// are spread evenly and independent per blob.
func blobScore(blob [32]byte, node NodeID) uint64 {
	z := binary.BigEndian.Uint64(blob[:8]) ^ (uint64(node) * 0x9e3779b97f4a7c15)
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
