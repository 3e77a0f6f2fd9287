package command

import (
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// Rejection reasons. Each is distinct (tests and AUDIT tell them apart) and
// wraps the node/api error the CLI maps to an exit code.
var (
	ErrMalformed       = fmt.Errorf("command: malformed event: %w", api.ErrInvalid)
	ErrWrongKind       = fmt.Errorf("command: event kind does not match its verb: %w", api.ErrInvalid)
	ErrWrongCluster    = fmt.Errorf("command: event is for another cluster: %w", api.ErrInvalid)
	ErrBadAction       = fmt.Errorf("command: invalid action: %w", api.ErrInvalid)
	ErrWrongPrefix     = fmt.Errorf("command: signing payload has the wrong domain prefix: %w", api.ErrInvalid)
	ErrUnknownOperator = fmt.Errorf("command: signer is not a registered operator: %w", api.ErrPermission)
	ErrBadSignature    = fmt.Errorf("command: bad signature: %w", api.ErrPermission)
	ErrNoSigner        = fmt.Errorf("command: no operator key to sign with: %w", api.ErrPermission)
	ErrRotateUnsigned  = fmt.Errorf("command: rotate needs the old and the new key's signatures: %w", api.ErrPermission)
	ErrBelowThreshold  = fmt.Errorf("command: %w", api.ErrBelowThreshold)
	ErrExpired         = fmt.Errorf("command: outside the commit window: %w", api.ErrExpired)
	ErrClockSkew       = fmt.Errorf("command: issued_at is too far in the future: %w", api.ErrExpired)
	ErrReplayedNonce   = fmt.Errorf("command: nonce already used: %w", api.ErrConsumed)
	ErrConsumed        = fmt.Errorf("command: %w", api.ErrConsumed)
	ErrLockedOut       = fmt.Errorf("command: %w", api.ErrLockedOut)
	ErrFrozen          = fmt.Errorf("command: %w", api.ErrFrozen)
	ErrNotFound        = fmt.Errorf("command: %w", api.ErrNotFound)
	ErrOperatorExists  = fmt.Errorf("command: operator already registered: %w", api.ErrExists)
	ErrRegistryFloor   = fmt.Errorf("command: change would leave fewer operators than a threshold: %w", api.ErrInvalid)
	ErrStateFull       = fmt.Errorf("command: admin state cap reached: %w", api.ErrInvalid)
	ErrBadGenesis      = fmt.Errorf("command: bad genesis: %w", api.ErrInvalid)
	ErrRevoked         = fmt.Errorf("command: node revoked: %w", api.ErrPermission)
)

// reject wraps a rejection reason with detail, keeping errors.Is working.
func reject(reason error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", reason, fmt.Sprintf(format, args...))
}
