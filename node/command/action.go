package command

import (
	"crypto/ed25519"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// Kind is an event's kind, bound into its canonical body.
type Kind uint8

const (
	KindAdmin    Kind = 1 // routine admin verbs, admin threshold
	KindICE      Kind = 2 // break-glass verbs, ICE threshold
	KindRegistry Kind = 3 // operator registry changes, admin threshold
)

func (k Kind) String() string {
	switch k {
	case KindAdmin:
		return "admin"
	case KindICE:
		return "ice"
	case KindRegistry:
		return "registry"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// KindOf is the kind an event carrying verb v must have; ok is false for an
// unknown verb.
func KindOf(v api.Verb) (Kind, bool) {
	switch {
	case v.IsICE():
		return KindICE, true
	case v.IsRegistry():
		return KindRegistry, true
	}
	for _, x := range api.AdminVerbs {
		if x == v {
			return KindAdmin, true
		}
	}
	return 0, false
}

// field is one optional parameter of api.Action; each verb names the fields
// it uses, and any other field set is refused so a signer cannot be shown one
// thing while extra, unseen parameters ride along.
type field uint16

const (
	fNode field = 1 << iota
	fDaemon
	fChain
	fChains
	fPeer
	fMigration
	fDuration
	fReason
	fOperatorID
	fOperatorName
	fOperatorKey
)

// fieldNames is a slice, not a map, so the first error reported (which ends
// up in AUDIT on every node) is the same everywhere.
var fieldNames = []struct {
	f    field
	name string
}{
	{fNode, "node"}, {fDaemon, "daemon"}, {fChain, "chain"}, {fChains, "chains"}, {fPeer, "peer"},
	{fMigration, "migration"}, {fDuration, "duration"}, {fReason, "reason"}, {fOperatorID, "operator id"},
	{fOperatorName, "operator name"}, {fOperatorKey, "operator key"},
}

// verbFields: allowed fields, and of those the required ones.
var verbFields = map[api.Verb]struct{ allowed, required field }{
	api.VerbDrain:               {fNode | fDuration, fNode},
	api.VerbEnterMaintenance:    {fNode | fDuration, fNode},
	api.VerbExitMaintenance:     {fNode, fNode},
	api.VerbCordon:              {fNode, fNode},
	api.VerbUncordon:            {fNode, fNode},
	api.VerbDropReplicas:        {fNode | fChains, fNode},
	api.VerbInvalidatePlacement: {fNode, fNode},
	api.VerbRestartAllDaemons:   {fNode, fNode},
	api.VerbClearAvoidList:      {fNode, fNode},
	api.VerbRestartDaemon:       {fDaemon, fDaemon},
	api.VerbAddOperator:         {fOperatorID | fOperatorName | fOperatorKey, fOperatorID | fOperatorName | fOperatorKey},
	api.VerbRemoveOperator:      {fOperatorID, fOperatorID},
	api.VerbRotateOperator:      {fOperatorID | fOperatorKey, fOperatorID | fOperatorKey},
	api.VerbAdmitNode:           {fNode | fOperatorKey, fNode | fOperatorKey},
	api.VerbRevokeNode:          {fNode, fNode},
	api.VerbFreezeCluster:       {fReason | fDuration, fDuration},
	api.VerbThawCluster:         {0, 0},
	api.VerbFlushAvoidLists:     {0, 0},
	api.VerbForceEvictReplica:   {fChain | fPeer, fChain | fPeer},
	api.VerbForceRestartDaemon:  {fDaemon, fDaemon},
	api.VerbForceCutover:        {fChain | fPeer, fChain | fPeer},
	api.VerbKillMigration:       {fMigration, fMigration},
	api.VerbForceDrain:          {fNode, fNode},
}

func setFields(a *api.Action) field {
	var f field
	if a.Node != 0 {
		f |= fNode
	}
	if a.Daemon != "" {
		f |= fDaemon
	}
	if a.Chain != "" {
		f |= fChain
	}
	if len(a.Chains) > 0 {
		f |= fChains
	}
	if a.Peer != 0 {
		f |= fPeer
	}
	if a.Migration != "" {
		f |= fMigration
	}
	if a.Duration != 0 {
		f |= fDuration
	}
	if a.Reason != "" {
		f |= fReason
	}
	if a.OperatorID != 0 {
		f |= fOperatorID
	}
	if a.OperatorName != "" {
		f |= fOperatorName
	}
	if len(a.OperatorKey) > 0 {
		f |= fOperatorKey
	}
	return f
}

// ValidateAction checks a's verb is known, only its verb's fields are set,
// the required ones are present and every value is within bounds. Every error
// wraps ErrBadAction (and so api.ErrInvalid).
func ValidateAction(a *api.Action) error {
	vf, ok := verbFields[a.Verb]
	if !ok {
		return reject(ErrBadAction, "unknown verb %q", truncate(string(a.Verb), MaxVerbBytes))
	}
	if !a.Blob.IsZero() || a.Replicas != 0 {
		return reject(ErrBadAction, "%s does not take a blob or a replica count", a.Verb)
	}
	set := setFields(a)
	for _, fn := range fieldNames {
		f, name := fn.f, fn.name
		if set&f != 0 && vf.allowed&f == 0 {
			return reject(ErrBadAction, "%s does not take a %s", a.Verb, name)
		}
		if vf.required&f != 0 && set&f == 0 {
			return reject(ErrBadAction, "%s needs a %s", a.Verb, name)
		}
	}
	checks := []struct {
		name string
		s    string
		max  int
	}{
		{"daemon", a.Daemon, MaxNameBytes},
		{"chain", a.Chain, MaxNameBytes},
		{"migration", a.Migration, MaxNameBytes},
		{"reason", a.Reason, MaxReasonBytes},
		{"operator name", a.OperatorName, MaxNameBytes},
	}
	for _, c := range checks {
		if err := checkText(c.name, c.s, c.max); err != nil {
			return err
		}
	}
	if len(a.Chains) > MaxChainsPerEvent {
		return reject(ErrBadAction, "%d chains, at most %d", len(a.Chains), MaxChainsPerEvent)
	}
	for i, c := range a.Chains {
		if c == "" {
			return reject(ErrBadAction, "empty chain name")
		}
		if err := checkText("chain", c, MaxNameBytes); err != nil {
			return err
		}
		// Strictly ascending: one spelling per set, so the body is canonical.
		if i > 0 && a.Chains[i-1] >= c {
			return reject(ErrBadAction, "chains must be sorted and distinct")
		}
	}
	if a.Duration < 0 || a.Duration%time.Millisecond != 0 {
		return reject(ErrBadAction, "duration %v must be whole non-negative milliseconds", a.Duration)
	}
	switch a.Verb {
	case api.VerbFreezeCluster:
		if a.Duration < MinFreezeTTL || a.Duration > MaxFreezeTTL {
			return reject(ErrBadAction, "freeze ttl %v outside %v..%v", a.Duration, MinFreezeTTL, MaxFreezeTTL)
		}
	case api.VerbDrain, api.VerbEnterMaintenance:
		if a.Duration > MaxDrainDeadline {
			return reject(ErrBadAction, "deadline %v beyond %v", a.Duration, MaxDrainDeadline)
		}
	case api.VerbAddOperator, api.VerbRotateOperator:
		if len(a.OperatorKey) != ed25519.PublicKeySize {
			return reject(ErrBadAction, "operator key is %d bytes, want %d", len(a.OperatorKey), ed25519.PublicKeySize)
		}
		if a.Verb == api.VerbAddOperator && identity.IDFromPublicKey(a.OperatorKey) != a.OperatorID {
			return reject(ErrBadAction, "operator id %s is not derived from the key", a.OperatorID)
		}
		if a.Verb == api.VerbRotateOperator && identity.IDFromPublicKey(a.OperatorKey) == a.OperatorID {
			return reject(ErrBadAction, "rotate to the same key")
		}
	case api.VerbAdmitNode:
		if len(a.OperatorKey) != ed25519.PublicKeySize {
			return reject(ErrBadAction, "node key is %d bytes, want %d", len(a.OperatorKey), ed25519.PublicKeySize)
		}
		if identity.IDFromPublicKey(a.OperatorKey) != a.Node {
			return reject(ErrBadAction, "node id %s is not derived from the key", a.Node)
		}
	}
	return nil
}

// checkText refuses over-long, invalid UTF-8 and control characters: these
// strings end up on operators' terminals, where an escape sequence in a
// freeze reason would be a terminal-injection attack.
func checkText(name, s string, max int) error {
	if len(s) > max {
		return reject(ErrBadAction, "%s is %d bytes, at most %d", name, len(s), max)
	}
	if !utf8.ValidString(s) {
		return reject(ErrBadAction, "%s is not valid UTF-8", name)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return reject(ErrBadAction, "%s contains control character %U", name, r)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// cloneAction deep-copies a's slices so a caller's later edits cannot reach
// an event's body.
func cloneAction(a api.Action) api.Action {
	if a.Chains != nil {
		a.Chains = append([]string(nil), a.Chains...)
	}
	if a.OperatorKey != nil {
		a.OperatorKey = append([]byte(nil), a.OperatorKey...)
	}
	return a
}
