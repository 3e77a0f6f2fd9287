package chain

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// Errors returned by this package. Those that callers map to exit codes wrap
// the api sentinels, so errors.Is(err, api.ErrNotFound) works on them too.
var (
	ErrClosed      = errors.New("chain: database closed")
	ErrNotFound    = fmt.Errorf("chain: %w", api.ErrNotFound)
	ErrInvalid     = fmt.Errorf("chain: %w", api.ErrInvalid)
	ErrQueueFull   = errors.New("chain: write queue full, record dropped")
	ErrReadOnlyLog = errors.New("chain: log is written through its own API")
	ErrCorrupt     = errors.New("chain: corrupt record")
	// ErrTampered is wrapped by every *TamperError from Verify.
	ErrTampered = errors.New("chain: admin ledger tampered")
	// ErrTooLarge is returned for a record beyond its size bound.
	ErrTooLarge = errors.New("chain: record too large")
)

// TamperError names the first inconsistency Verify found on disk.
type TamperError struct {
	Seq    uint64 // local admin seq of the offending record (0: not tied to one)
	Key    string // the Badger key involved, printable
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("chain: admin ledger tampered at seq %d (key %s): %s", e.Seq, e.Key, e.Reason)
}

func (e *TamperError) Unwrap() error { return ErrTampered }
