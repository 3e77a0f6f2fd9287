package node

import (
	"context"
	"fmt"
	"io"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/command"
)

var _ api.BlobClient = (*Client)(nil)

// Blobs is the client's datafort surface: intents (put, pin, unpin, rm)
// are signed with the client's operator key.
func (c *Client) Blobs() api.Blobs { return blobClient{c} }

type blobClient struct{ c *Client }

func (b blobClient) svc() *blob.Service { return b.c.n.blobs }

func (b blobClient) Put(ctx context.Context, r io.Reader, o api.BlobPutOptions) (api.BlobInfo, error) {
	if _, ok, why := b.c.Operator(); !ok {
		return api.BlobInfo{}, fmt.Errorf("%w: %s", api.ErrPermission, why)
	}
	return b.svc().Put(ctx, r, o, b.c.signer)
}

func (b blobClient) Get(ctx context.Context, h api.BlobHash, w io.Writer, progress func(done, total int64)) (api.BlobInfo, error) {
	return b.svc().Get(ctx, blob.Hash(h), w, progress)
}

func (b blobClient) Stat(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	return b.svc().Stat(ctx, blob.Hash(h))
}

func (b blobClient) List(ctx context.Context) ([]api.BlobInfo, error) { return b.svc().List(ctx) }

func (b blobClient) Pin(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	return b.intent(ctx, h, func(in *blob.Intent) error { in.Pinned = true; return nil })
}

func (b blobClient) Unpin(ctx context.Context, h api.BlobHash) (api.BlobInfo, error) {
	return b.intent(ctx, h, func(in *blob.Intent) error { in.Pinned = false; return nil })
}

func (b blobClient) Remove(ctx context.Context, h api.BlobHash, force bool) error {
	_, err := b.intent(ctx, h, func(in *blob.Intent) error {
		if in.Pinned && !force {
			return fmt.Errorf("%w: blob %s is pinned: unpin it first, or remove with force", api.ErrInvalid, h.Short())
		}
		in.Removed, in.Pinned, in.Replicas = true, false, 0
		return nil
	})
	return err
}

func (b blobClient) SetReplicas(ctx context.Context, h api.BlobHash, n int) (api.BlobInfo, error) {
	if n < 1 || n > blob.MaxReplicas {
		return api.BlobInfo{}, fmt.Errorf("%w: replicas %d: want 1..%d", api.ErrInvalid, n, blob.MaxReplicas)
	}
	return b.intent(ctx, h, func(in *blob.Intent) error { in.Replicas = n; return nil })
}

// Commit applies a confirmed blob verb, bound to its preview as an admin
// commit is (command.CommitBlob).
func (b blobClient) Commit(ctx context.Context, confirmed api.BlastRadius) (api.BlobInfo, error) {
	return command.CommitBlob(ctx, confirmed, b.c.Preview, b)
}

func (b blobClient) intent(ctx context.Context, h api.BlobHash, change func(*blob.Intent) error) (api.BlobInfo, error) {
	if _, ok, why := b.c.Operator(); !ok {
		return api.BlobInfo{}, fmt.Errorf("%w: %s", api.ErrPermission, why)
	}
	return b.svc().SetIntent(ctx, blob.Hash(h), b.c.signer, change)
}

func (b blobClient) GC(ctx context.Context) ([]api.BlobGC, error) { return b.svc().GC(ctx) }
