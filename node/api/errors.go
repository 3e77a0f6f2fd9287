package api

import (
	"context"
	"errors"

	"github.com/deck-mesh/deck/node/identity"
)

// Typed errors. Every Client error wraps one of these (or is a plain failure),
// so callers use errors.Is and the CLI maps them to exit codes.
var (
	ErrInvalid        = errors.New("invalid argument")
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrPermission     = errors.New("permission denied")
	ErrConsumed       = errors.New("proposal already consumed")
	ErrExpired        = errors.New("proposal expired")
	ErrBelowThreshold = errors.New("signatures below threshold")
	ErrLockedOut      = errors.New("locked out by ICE cooldown")
	ErrFrozen         = errors.New("cluster is frozen")
	ErrNotConnected   = errors.New("not connected to the cluster")
	ErrTimeout        = errors.New("timed out")
	ErrRefused        = errors.New("confirmation refused")
)

// Exit codes (DESIGN §7).
const (
	ExitOK           = 0
	ExitFailure      = 1
	ExitInvalid      = 2
	ExitNotFound     = 3
	ExitExists       = 4
	ExitPermission   = 5
	ExitNotConnected = 6
	ExitTimeout      = 7
	ExitRefused      = 8
)

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInvalid):
		return ExitInvalid
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.Is(err, ErrExists):
		return ExitExists
	case errors.Is(err, ErrPermission), errors.Is(err, ErrBelowThreshold), errors.Is(err, identity.ErrUnprotectedKey):
		return ExitPermission
	case errors.Is(err, ErrNotConnected):
		return ExitNotConnected
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ExitTimeout
	case errors.Is(err, ErrRefused), errors.Is(err, ErrPreviewChanged):
		// A stale preview is a refused confirmation: the operator said YES
		// to a projection that no longer holds.
		return ExitRefused
	}
	return ExitFailure
}
