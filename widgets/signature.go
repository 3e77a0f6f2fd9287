package widgets

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
)

// SignaturePrefix starts the text form of a co-signature.
const SignaturePrefix = command.SignaturePrefix

// FormatSignature renders a signature in the pasteable text form
// "deck-sig:<operator id hex>:<base64 sig>" (node/command's format, so the
// CLI's `deck ice sign` output pastes here unchanged).
func FormatSignature(s api.Signature) string { return command.FormatSignature(s) }

// ParseSignature parses the text form; it never panics on bad input and
// names what is wrong.
func ParseSignature(text string) (api.Signature, error) { return command.ParseSignature(text) }

// SigCollector gathers ICE co-signatures up to a threshold. Each pasted
// line is parsed and checked (Check: SimulatedProposal.Check) as it arrives;
// signatures are deduplicated by operator, so one operator never counts
// twice. Enter on an empty line commits once the threshold is met and the
// proposal has not expired.
type SigCollector struct {
	Title     string
	Verb      string
	Payload   []byte
	Threshold int
	ExpiresAt time.Time
	Now       func() time.Time
	Sigs      []api.Signature
	Name      func(api.NodeID) string
	Check     func(api.Signature) error
	OnCommit  func([]api.Signature) tea.Cmd
	OnExport  func() tea.Cmd
	OnAbort   func() tea.Cmd
	In        Input
}

// Add verifies and records one signature.
func (s *SigCollector) Add(sig api.Signature) error {
	for _, have := range s.Sigs {
		if have.Operator == sig.Operator {
			return fmt.Errorf("operator %s already signed", sig.Operator.Short())
		}
	}
	if s.Check != nil {
		if err := s.Check(sig); err != nil {
			return fmt.Errorf("rejected: %w", err)
		}
	}
	s.Sigs = append(s.Sigs, sig)
	return nil
}

// Ready reports whether the threshold is met.
func (s *SigCollector) Ready() bool { return len(s.Sigs) >= s.Threshold }

func (s *SigCollector) expired() bool {
	return s.Now != nil && !s.ExpiresAt.IsZero() && !s.Now().Before(s.ExpiresAt)
}

func (s *SigCollector) HandleKey(msg tea.KeyPressMsg) (tea.Cmd, bool) {
	switch msg.String() {
	case "esc":
		if s.OnAbort != nil {
			return s.OnAbort(), true
		}
		return nil, true
	case "ctrl+e":
		if s.OnExport != nil {
			return s.OnExport(), false
		}
		return nil, false
	case "enter":
		text := strings.TrimSpace(s.In.String())
		if text == "" {
			if s.expired() {
				s.In.Err = "proposal expired: abort with esc and propose again"
				return nil, false
			}
			if !s.Ready() {
				s.In.Err = fmt.Sprintf("need %d more signature(s)", s.Threshold-len(s.Sigs))
				return nil, false
			}
			if s.OnCommit != nil {
				return s.OnCommit(append([]api.Signature(nil), s.Sigs...)), true
			}
			return nil, true
		}
		sig, err := ParseSignature(text)
		if err == nil {
			err = s.Add(sig)
		}
		if err != nil {
			s.In.Err = err.Error()
			return nil, false
		}
		s.In.Value = s.In.Value[:0]
		return nil, false
	}
	s.In.HandleKey(msg)
	return nil, false
}

func (s *SigCollector) HandlePaste(text string) { s.In.Paste(text) }

func (s *SigCollector) Hints() string {
	return "paste deck-sig:… + enter · enter on empty line commits · ctrl+e export payload · esc abort"
}

func (s *SigCollector) View(th *common.Theme, now time.Time, w int) (string, []string) {
	var lines []string
	add := func(tone common.Tone, text string) { lines = append(lines, th.Paint(tone, Truncate(text, w))) }
	progress := fmt.Sprintf("signatures %d/%d", len(s.Sigs), s.Threshold)
	tone := common.ToneWarn
	if s.Ready() {
		tone = common.ToneOK
		progress += " · ready: enter to commit"
	}
	left := "expires in " + Countdown(now, s.ExpiresAt)
	if !now.Before(s.ExpiresAt) {
		left = "EXPIRED"
	}
	add(tone, progress+" · "+left)
	for _, sig := range s.Sigs {
		name := sig.Operator.Short()
		if s.Name != nil {
			name = s.Name(sig.Operator)
		}
		add(common.ToneOK, "✓ "+name+" "+sig.Operator.String())
	}
	add(common.ToneDim, fmt.Sprintf("payload (%d bytes, base64):", len(s.Payload)))
	enc := base64.StdEncoding.EncodeToString(s.Payload)
	wrapped := WrapPlain(enc, w)
	const payloadLines = 3
	for i, l := range wrapped {
		if i == payloadLines {
			add(common.ToneDim, "… (ctrl+e exports the whole payload)")
			break
		}
		add(common.ToneAccent, l)
	}
	lines = append(lines, "")
	lines = append(lines, s.In.View(th, "co-signature:", w)...)
	return s.Title, lines
}
