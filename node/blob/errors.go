package blob

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// Errors. Those a CLI maps to exit codes wrap the api sentinels.
var (
	ErrInvalid    = fmt.Errorf("blob: %w", api.ErrInvalid)
	ErrNotFound   = fmt.Errorf("blob: %w", api.ErrNotFound)
	ErrPermission = fmt.Errorf("blob: %w", api.ErrPermission)
	ErrTimeout    = fmt.Errorf("blob: %w", api.ErrTimeout)
	// ErrMalformed is the domain of every decode error (manifests, intents,
	// records, wire messages).
	ErrMalformed = errors.New("blob: malformed")
	// ErrCorrupt: bytes whose hash is not their address, read from this
	// node's disk (bit rot, a torn write) or received from a peer.
	ErrCorrupt = errors.New("blob: corrupt chunk")
	// ErrFull: storing would take the node past its disk budget.
	ErrFull = errors.New("blob: disk budget exhausted")
	// ErrRemoved: an operator removed the blob (a signed tombstone).
	ErrRemoved = fmt.Errorf("blob: %w: removed by an operator", api.ErrNotFound)
	// ErrUnavailable: no holder could serve a chunk.
	ErrUnavailable = errors.New("blob: no holder could serve it")
)
