package command

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Blob verbs (pin-blob, unpin-blob, set-blob-replicas) change one blob's
// signed intent, not the admin ledger; their preview is the blob's
// placement (placement.PlaceBlob, the function every holder's policy round
// runs) under the intent as it is and as it would be, on the same view the
// admin projections use (the admin intent applied, so a draining node is no
// host). What differs is what the operator confirms: copies added and shed.

// validateBlobAction checks a blob verb's parameters: a blob, and a
// desired count only for set-blob-replicas.
func validateBlobAction(a *api.Action) error {
	if a.Blob.IsZero() {
		return reject(ErrBadAction, "%s needs a blob", a.Verb)
	}
	if a.Node != 0 || a.Daemon != "" || a.Chain != "" || len(a.Chains) > 0 || a.Peer != 0 || a.Migration != "" ||
		a.Duration != 0 || a.Reason != "" || a.OperatorID != 0 || a.OperatorName != "" || len(a.OperatorKey) > 0 {
		return reject(ErrBadAction, "%s takes a blob (and for set-blob-replicas a count), nothing else", a.Verb)
	}
	switch {
	case a.Verb != api.VerbSetBlobReplicas && a.Replicas != 0:
		return reject(ErrBadAction, "%s does not take a replica count", a.Verb)
	case a.Verb == api.VerbSetBlobReplicas && (a.Replicas < 1 || a.Replicas > api.MaxBlobReplicas):
		return reject(ErrBadAction, "set-blob-replicas: %d replicas, want 1..%d", a.Replicas, api.MaxBlobReplicas)
	}
	return nil
}

// FindBlob is the view's entry for h, or nil.
func FindBlob(cs *snapshot.ClusterSnapshot, h api.BlobHash) *snapshot.BlobView {
	i, ok := slices.BinarySearchFunc(cs.Blobs, h, func(b snapshot.BlobView, h api.BlobHash) int { return bytes.Compare(b.Hash[:], h[:]) })
	if !ok {
		return nil
	}
	return &cs.Blobs[i]
}

// previewBlob projects a blob verb on cs (the admin intent already applied).
func previewBlob(cs *snapshot.ClusterSnapshot, a api.Action) (api.BlastRadius, error) {
	br := api.BlastRadius{Action: a, SnapshotGen: cs.Generation, StabilityBefore: 1, StabilityAfter: 1}
	b := FindBlob(cs, a.Blob)
	if b == nil {
		return api.BlastRadius{}, fmt.Errorf("%w: no node reports holding blob %s", ErrNotFound, a.Blob.Short())
	}
	var warnings []string
	warn := func(format string, args ...any) {
		if len(warnings) < MaxBlastWarnings {
			warnings = append(warnings, fmt.Sprintf(format, args...))
		}
	}
	desired := b.Replicas
	want := desired
	switch a.Verb {
	case api.VerbPinBlob:
		if b.Pinned {
			warn("blob %s is already pinned: the intent is signed again, nothing changes", a.Blob.Short())
		}
	case api.VerbUnpinBlob:
		if !b.Pinned {
			warn("blob %s is not pinned: the intent is signed again, nothing changes", a.Blob.Short())
		}
		for _, h := range b.Holders {
			if v := cs.Node(h); v != nil && v.Datafort.Overflow != snapshot.OverflowNone {
				warn("holder %s is %s: unpinned, its copy may be pushed to a peer with room", h, v.Datafort.Overflow)
			}
		}
	case api.VerbSetBlobReplicas:
		want = a.Replicas
		if want == desired {
			warn("blob %s already wants %d replicas: nothing moves", a.Blob.Short(), want)
		}
	}
	before := placement.PlaceBlob(cs, b.Hash, b.Size, desired, b.Holders)
	after := placement.PlaceBlob(cs, b.Hash, b.Size, want, b.Holders)
	for _, n := range after {
		if !slices.Contains(before, n) {
			br.BlobMoves = append(br.BlobMoves, api.BlobMove{Blob: a.Blob, To: n})
			if !slices.Contains(b.Holders, n) {
				br.BlobCopyBytes += b.Size
			}
		}
	}
	for _, n := range before {
		if !slices.Contains(after, n) {
			br.BlobMoves = append(br.BlobMoves, api.BlobMove{Blob: a.Blob, From: n})
		}
	}
	for _, mv := range br.BlobMoves {
		br.Nodes = append(br.Nodes, max(mv.From, mv.To))
	}
	slices.Sort(br.Nodes)
	if len(after) < want {
		warn("only %d datafort nodes can hold blob %s (healthy, uncordoned, not overflowing, with room): %d of %d replicas",
			len(after), a.Blob.Short(), len(after), want)
	}
	if want == 1 && len(after) == 1 {
		warn("one replica: losing %s loses blob %s", after[0], a.Blob.Short())
	}
	if slices.ContainsFunc(br.BlobMoves, func(m api.BlobMove) bool { return m.To == 0 }) {
		warn("a copy placement no longer wants is dropped once every kept holder has the blob")
	}
	br.Warnings = warnings
	return br, nil
}

// CommitBlob commits a confirmed blob verb on blobs: it previews again with
// preview (the client's own) and refuses, with the new preview, when the
// copies that move changed (PreviewChanged), else signs the intent.
// node.Client's Blobs().Commit and the TUI fixture's are this function.
func CommitBlob(ctx context.Context, confirmed api.BlastRadius, preview func(context.Context, api.Action) (api.BlastRadius, error), blobs api.Blobs) (api.BlobInfo, error) {
	a := normalizeAction(confirmed.Action)
	if !a.Verb.IsBlob() {
		return api.BlobInfo{}, reject(ErrBadAction, "%q is not a blob verb", truncate(string(a.Verb), MaxVerbBytes))
	}
	now, err := preview(ctx, a)
	if err != nil {
		return api.BlobInfo{}, err
	}
	seen := confirmed
	seen.Action = a
	if err := PreviewChanged(&seen, &now); err != nil {
		return api.BlobInfo{}, err
	}
	switch a.Verb {
	case api.VerbPinBlob:
		return blobs.Pin(ctx, a.Blob)
	case api.VerbUnpinBlob:
		return blobs.Unpin(ctx, a.Blob)
	default:
		return blobs.SetReplicas(ctx, a.Blob, a.Replicas)
	}
}

// blobMoveText names one blob move for DiffMoves.
func blobMoveText(m api.BlobMove) string {
	if m.From == 0 {
		return fmt.Sprintf("blob %s copy to %s", m.Blob.Short(), identity.NodeID(m.To))
	}
	return fmt.Sprintf("blob %s copy on %s dropped", m.Blob.Short(), identity.NodeID(m.From))
}
