package command

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/placement/placementtest"
	"github.com/deck-mesh/deck/node/snapshot"
)

// blobCluster is four datafort nodes with room, one blob held by the two
// its placement ranks first (desired 2).
func blobCluster(t *testing.T) (*snapshot.ClusterSnapshot, api.BlobHash) {
	t.Helper()
	cs := placementtest.ClusterOf(4)
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		n.Capabilities = []string{placement.CapabilityDatafort}
		n.Datafort = snapshot.Datafort{Enabled: true, Capacity: 1 << 30}
	}
	h := api.BlobHash{0x42, 7}
	holders := placement.PlaceBlob(cs, h, 1<<20, 2, nil)
	cs.Blobs = []snapshot.BlobView{{Hash: h, Size: 1 << 20, Replicas: 2, Holders: holders, Name: "ckpt"}}
	return cs, h
}

func TestPreviewBlobVerbs(t *testing.T) {
	cs, h := blobCluster(t)
	b := cs.Blobs[0]
	tests := []struct {
		name      string
		a         api.Action
		added     int
		dropped   int
		copyBytes uint64
		warn      string
	}{
		{"pin moves nothing", api.Action{Verb: api.VerbPinBlob, Blob: h}, 0, 0, 0, ""},
		{"one more replica: a new copy fetched", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: 3}, 1, 0, b.Size, ""},
		{"one fewer: a copy dropped, one left", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: 1}, 0, 1, 0, "one replica"},
		{"more than the dataforts", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: 6}, 2, 0, 2 * b.Size, "only 4 datafort nodes"},
		{"the same count", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: 2}, 0, 0, 0, "nothing moves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br, err := PreviewWith(cs, placement.Spec{}, nil, tt.a)
			if err != nil {
				t.Fatal(err)
			}
			var added, dropped int
			for _, mv := range br.BlobMoves {
				switch {
				case mv.From == 0 && mv.To != 0 && !containsID(b.Holders, mv.To):
					added++
				case mv.To == 0 && containsID(b.Holders, mv.From):
					dropped++
				default:
					t.Errorf("move %+v is neither a new copy nor a holder's copy dropped", mv)
				}
			}
			if added != tt.added || dropped != tt.dropped || br.BlobCopyBytes != tt.copyBytes || len(br.Nodes) != added+dropped {
				t.Fatalf("added %d dropped %d bytes %d nodes %v, want %d %d %d", added, dropped, br.BlobCopyBytes, br.Nodes, tt.added, tt.dropped, tt.copyBytes)
			}
			if tt.warn != "" && !strings.Contains(strings.Join(br.Warnings, "; "), tt.warn) {
				t.Fatalf("warnings %q, want one saying %q", br.Warnings, tt.warn)
			}
		})
	}
}

func TestPreviewBlobRefusesBadActions(t *testing.T) {
	cs, h := blobCluster(t)
	tests := []struct {
		name string
		a    api.Action
		want error
	}{
		{"no blob", api.Action{Verb: api.VerbPinBlob}, ErrBadAction},
		{"zero replicas", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h}, ErrBadAction},
		{"too many replicas", api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: api.MaxBlobReplicas + 1}, ErrBadAction},
		{"a count on a pin", api.Action{Verb: api.VerbPinBlob, Blob: h, Replicas: 3}, ErrBadAction},
		{"a node riding along", api.Action{Verb: api.VerbUnpinBlob, Blob: h, Node: 3}, ErrBadAction},
		{"a blob on an admin verb", api.Action{Verb: api.VerbCordon, Node: 1, Blob: h}, ErrBadAction},
		{"a blob the view does not list", api.Action{Verb: api.VerbPinBlob, Blob: api.BlobHash{9}}, api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PreviewWith(cs, placement.Spec{}, nil, tt.a); !errors.Is(err, tt.want) {
				t.Fatalf("PreviewWith(%+v) = %v, want %v", tt.a, err, tt.want)
			}
		})
	}
}

// recordingBlobs is an api.Blobs that records the intents asked of it.
type recordingBlobs struct {
	api.Blobs
	calls []string
}

func (r *recordingBlobs) Pin(_ context.Context, h api.BlobHash) (api.BlobInfo, error) {
	r.calls = append(r.calls, "pin "+h.Short())
	return api.BlobInfo{Hash: h, Pinned: true}, nil
}

func (r *recordingBlobs) SetReplicas(_ context.Context, h api.BlobHash, n int) (api.BlobInfo, error) {
	r.calls = append(r.calls, "replicas "+h.Short())
	return api.BlobInfo{Hash: h, Replicas: n}, nil
}

// CommitBlob signs only against the preview confirmed: when the copies
// that move changed, it returns the new preview and calls nothing.
func TestCommitBlobBoundToConfirmedPreview(t *testing.T) {
	cs, h := blobCluster(t)
	a := api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: 3}
	confirmed, err := PreviewWith(cs, placement.Spec{}, nil, a)
	if err != nil {
		t.Fatal(err)
	}
	// The new copy's node is cordoned after the operator confirmed.
	cp := *cs
	cp.Nodes = append([]snapshot.NodeView(nil), cs.Nodes...)
	for i := range cp.Nodes {
		if cp.Nodes[i].ID == confirmed.BlobMoves[0].To {
			cp.Nodes[i].Cordoned = true
		}
	}
	moved := &cp
	preview := func(_ context.Context, a api.Action) (api.BlastRadius, error) {
		return PreviewWith(moved, placement.Spec{}, nil, a)
	}
	rec := &recordingBlobs{}
	_, err = CommitBlob(context.Background(), confirmed, preview, rec)
	var pc *api.PreviewChangedError
	if !errors.As(err, &pc) || len(pc.Changes) == 0 || len(rec.calls) != 0 {
		t.Fatalf("commit against a stale preview: err %v, calls %v", err, rec.calls)
	}
	if _, err := CommitBlob(context.Background(), pc.Preview, preview, rec); err != nil || len(rec.calls) != 1 {
		t.Fatalf("commit of the new preview: err %v, calls %v", err, rec.calls)
	}
	// A pin is not a set-replicas: the verb is part of what is confirmed.
	pin := pc.Preview
	pin.Action.Verb, pin.Action.Replicas = api.VerbPinBlob, 0
	if _, err := CommitBlob(context.Background(), pin, preview, rec); err == nil {
		t.Fatal("a confirmed set-replicas preview committed as a pin")
	}
}

func containsID(ids []identity.NodeID, id identity.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestAttackAdminVerbCarriesBlobFields: an admin action with a blob or a
// replica count set is refused, so a signer is never shown one action
// while parameters it does not display ride along (the blob fields are
// not part of an admin event's canonical body).
func TestAttackAdminVerbCarriesBlobFields(t *testing.T) {
	for _, a := range []api.Action{
		{Verb: api.VerbCordon, Node: 1, Blob: api.BlobHash{1}},
		{Verb: api.VerbDrain, Node: 1, Duration: time.Minute, Replicas: 3},
	} {
		if err := ValidateAction(&a); !errors.Is(err, ErrBadAction) {
			t.Errorf("ValidateAction(%+v) = %v, want ErrBadAction", a, err)
		}
	}
}
