package chainfold

import "github.com/deck-mesh/deck/node/chain"

// Ledger ingestion bounds (the commit push's live in commit.go and
// commitmsg.go).
const (
	// MaxReceiptsPerEvent bounds the receipts stored and served with one
	// event; more are dropped (this node's own first, then those that
	// verified, in the order they came). One valid receipt is enough for
	// any receiver; a few survive the loss of an attester's certificate.
	MaxReceiptsPerEvent = 4
	// MaxRegistryVersions bounds the registry history the fold keeps for
	// ingestion (State.Registry): one version per accepted registry event,
	// oldest dropped first. An arriving event placed before the oldest
	// kept version cannot be checked and is refused.
	MaxRegistryVersions = 64
	// maxIssuedAtMs is the latest time the ledger orders (the year 9999);
	// receipt times are bounded by it too.
	maxIssuedAtMs = chain.MaxIssuedAtMs
)

// The receipt list must fit what the ledger stores beside an event: the
// constant conversion fails to compile if it does not.
const _ = uint(chain.MaxAttachmentBytes - MaxReceiptsBytes)
