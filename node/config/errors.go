package config

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/api"
)

// FieldError says which field of a config file is wrong and why. It wraps
// api.ErrInvalid, so the CLI exits 2 on it, and the underlying cause when
// there is one.
type FieldError struct {
	// Field is the dotted TOML path, e.g. "genesis.operators[1].public_key";
	// "(syntax)" for a file that is not TOML at all.
	Field   string
	Problem string
	Err     error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Unwrap exposes api.ErrInvalid and the cause to errors.Is / errors.As.
func (e *FieldError) Unwrap() []error {
	if e.Err == nil {
		return []error{api.ErrInvalid}
	}
	return []error{api.ErrInvalid, e.Err}
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Warning is a problem that does not stop a load but that an operator should
// hear about, such as a cluster file other users can read.
type Warning struct {
	Path    string
	Message string
}

func (w Warning) String() string { return w.Path + ": " + w.Message }

// fieldErrors collects every problem in a file so an operator fixes them in
// one pass instead of one per run.
type fieldErrors []error

func (fe *fieldErrors) add(err *FieldError) { *fe = append(*fe, err) }

func (fe fieldErrors) err() error {
	switch len(fe) {
	case 0:
		return nil
	case 1:
		return fe[0]
	}
	return errors.Join(fe...)
}
