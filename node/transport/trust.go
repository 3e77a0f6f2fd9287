package transport

import (
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// Membership beyond the PSK. The PSK is the outer gate: it lets a holder
// complete a handshake. Whether the peer behind that handshake is a member is
// the Trust's decision, made from the certificate it presents (nil when it
// presents none) and the operator registry the Trust holds. A peer the Trust
// refuses is *pending*: its session exists so it can be admitted, but
// nothing it sends reaches a service, it is never a route or relay target,
// and it sits in a small table of its own (MaxPendingPeers), not the
// node table.

// Admission is what the Trust grants a peer.
type Admission struct {
	Role    identity.Role
	Expires time.Time // the certificate's NotAfter: admission lapses then
}

// Trust decides membership. Implementations must be safe for concurrent use
// and cheap (it runs once per handshake and on Reassess), and must not call
// back into the Transport.
type Trust interface {
	// Admit returns the admission of the peer with record rec presenting
	// cert (nil: none), or an error saying why it is not a member.
	Admit(rec *identity.NodeRecord, cert *identity.Certificate, now time.Time) (Admission, error)
}

// PendingPeer is a peer that completed a handshake without being admitted.
type PendingPeer struct {
	Record    identity.NodeRecord
	Addr      string // where its packets come from
	FirstSeen time.Time
	LastSeen  time.Time
	Reason    string // why the Trust refused it
}
