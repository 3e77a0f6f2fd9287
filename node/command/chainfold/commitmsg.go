package chainfold

import (
	"errors"
	"fmt"

	"github.com/deck-mesh/deck/node/chain"
)

// The commit push protocol's messages on mesh.ChanCommand: one kind byte,
// then
//
//	push: the event's bytes (1..chain.MaxEventBytes)
//	ack:  the event's ledger key (32 bytes)
//	nack: the ledger key, then the refusal's reason (0..MaxNackReasonBytes)
const (
	msgPush = 1
	msgAck  = 2
	msgNack = 3

	ledgerKeyBytes = 32
	// MaxNackReasonBytes bounds a refusal's reason on the wire; a longer
	// one is cut.
	MaxNackReasonBytes = 512
	// maxCommitMessageBytes is the largest message of the protocol (a push
	// of the largest event).
	maxCommitMessageBytes = 1 + chain.MaxEventBytes
)

// ErrMalformedCommitMessage is what parseCommitMessage refuses.
var ErrMalformedCommitMessage = errors.New("chainfold: malformed commit message")

// commitMessage is one parsed message. event and reason alias the parsed
// bytes.
type commitMessage struct {
	kind   byte
	event  []byte   // push
	id     [32]byte // ack, nack
	reason []byte   // nack
}

func appendPush(b, raw []byte) []byte { return append(append(b, msgPush), raw...) }

func appendAck(b []byte, id [32]byte) []byte { return append(append(b, msgAck), id[:]...) }

// appendNack cuts reason to MaxNackReasonBytes (the receiver repairs a cut
// through a UTF-8 sequence).
func appendNack(b []byte, id [32]byte, reason string) []byte {
	if len(reason) > MaxNackReasonBytes {
		reason = reason[:MaxNackReasonBytes]
	}
	b = append(append(b, msgNack), id[:]...)
	return append(b, reason...)
}

// parseCommitMessage parses bytes from the network; anything that is not
// exactly one message of the protocol within its bounds is refused.
func parseCommitMessage(msg []byte) (commitMessage, error) {
	if len(msg) < 1 {
		return commitMessage{}, fmt.Errorf("%w: empty", ErrMalformedCommitMessage)
	}
	m := commitMessage{kind: msg[0]}
	body := msg[1:]
	switch m.kind {
	case msgPush:
		if len(body) == 0 || len(body) > chain.MaxEventBytes {
			return commitMessage{}, fmt.Errorf("%w: push of %d bytes (1..%d)", ErrMalformedCommitMessage, len(body), chain.MaxEventBytes)
		}
		m.event = body
	case msgAck:
		if len(body) != ledgerKeyBytes {
			return commitMessage{}, fmt.Errorf("%w: ack of %d bytes, want %d", ErrMalformedCommitMessage, len(body), ledgerKeyBytes)
		}
		copy(m.id[:], body)
	case msgNack:
		if len(body) < ledgerKeyBytes || len(body) > ledgerKeyBytes+MaxNackReasonBytes {
			return commitMessage{}, fmt.Errorf("%w: nack of %d bytes (%d..%d)", ErrMalformedCommitMessage, len(body), ledgerKeyBytes, ledgerKeyBytes+MaxNackReasonBytes)
		}
		copy(m.id[:], body)
		m.reason = body[ledgerKeyBytes:]
	default:
		return commitMessage{}, fmt.Errorf("%w: kind %d", ErrMalformedCommitMessage, m.kind)
	}
	return m, nil
}
