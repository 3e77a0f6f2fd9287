package api

import (
	"context"
	"time"
)

// AuditOutcome of an admin or ICE attempt.
type AuditOutcome uint8

const (
	Accepted AuditOutcome = iota
	Rejected
)

func (o AuditOutcome) String() string {
	if o == Rejected {
		return "rejected"
	}
	return "accepted"
}

// AuditRecord is one admin-ledger event, or a locally recorded rejection.
type AuditRecord struct {
	Seq        uint64
	EventID    string
	At         time.Time // when recorded locally
	IssuedAt   time.Time
	Outcome    AuditOutcome
	Reason     string // rejections
	Operator   NodeID
	Action     Action
	ICE        bool
	Signatures []Signature
	Nonce      string
	// From is, on a record of the node's local reject ring (an event it
	// refused at ingestion, which never entered its ledger), the node that
	// sent the event: the authenticated sender of a push or the
	// anti-entropy peer that served it, or this node for its own
	// console's commit. Such a record carries no Operator: the event only
	// names one, and a name is not an attempt (its signatures may be
	// forged); Reason says which operator it names. Zero on ledger
	// records.
	From NodeID
}

// AuditQuery builds a query over the local copy of the admin ledger (plus
// local rejections). Builders return a new query; Collect runs it.
type AuditQuery interface {
	Recent(n int) AuditQuery
	ByOperator(id NodeID) AuditQuery
	Between(t0, t1 time.Time) AuditQuery
	ForceOnly() AuditQuery
	Since(seq uint64) AuditQuery
	Collect(ctx context.Context) ([]AuditRecord, error)
	// Stream backfills matching records then follows new ones.
	Stream(ctx context.Context) (*Stream[AuditRecord], error)
	// Verify checks the local hash-linked copy; nil means intact.
	Verify(ctx context.Context) error
}
