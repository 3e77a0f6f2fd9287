package api

import (
	"errors"
	"strings"
)

// ErrPreviewChanged refuses a commit whose blast radius, recomputed at commit
// time, no longer moves what the operator confirmed. It is always carried by
// a *PreviewChangedError holding the new preview, to be confirmed again.
var ErrPreviewChanged = errors.New("the blast radius changed since it was confirmed")

// PreviewChangedError is the refusal of a commit against a stale preview:
// Changes names what moves differently, Preview is the projection as it
// stands now. Nothing was committed.
type PreviewChangedError struct {
	Changes []string
	Preview BlastRadius
}

func (e *PreviewChangedError) Error() string {
	if len(e.Changes) == 0 {
		return ErrPreviewChanged.Error()
	}
	return ErrPreviewChanged.Error() + ": " + strings.Join(e.Changes, "; ")
}

// Is makes errors.Is(err, ErrPreviewChanged) hold.
func (e *PreviewChangedError) Is(target error) bool { return target == ErrPreviewChanged }
