package widgets

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
)

// SignaturePrefix starts the text form of a co-signature.
const SignaturePrefix = api.SignaturePrefix

// FormatSignature renders a signature in the pasteable text form
// "deck-sig:<operator id hex>:<base64 sig>" (node/api's codec, so the CLI's
// `deck ice sign` output pastes here unchanged).
func FormatSignature(s api.Signature) string { return api.FormatSignature(s) }

// ParseSignature parses the text form; it never panics on bad input and
// names what is wrong.
func ParseSignature(text string) (api.Signature, error) { return api.ParseSignature(text) }

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

func (s *SigCollector) HandleKey(msg tea.KeyPressMsg, k *common.KeyMap) (tea.Cmd, bool) {
	switch {
	case key.Matches(msg, k.Cancel):
		if s.OnAbort != nil {
			return s.OnAbort(), true
		}
		return nil, true
	case key.Matches(msg, k.ExportPayload):
		if s.OnExport != nil {
			return s.OnExport(), false
		}
		return nil, false
	case key.Matches(msg, k.Submit):
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
		if err := s.addText(text); err != nil {
			s.In.Err = err.Error()
			return nil, false
		}
		s.In.Value = s.In.Value[:0]
		return nil, false
	}
	s.In.HandleKey(msg, k)
	return nil, false
}

// addText parses one "deck-sig:…" line and adds it.
func (s *SigCollector) addText(text string) error {
	if n := len([]rune(text)); n > InputMaxRunes {
		return fmt.Errorf("line is %d characters long (max %d)", n, InputMaxRunes)
	}
	sig, err := ParseSignature(text)
	if err != nil {
		return err
	}
	return s.Add(sig)
}

// HandlePaste takes pasted text. Without a line break it goes into the
// input as typed text, and Enter checks it. With line breaks (a co-signer's
// several deck-sig lines, or one line with its newline) each non-empty line
// is checked and added as it arrives, as if typed and entered: Input.Paste
// alone would drop the breaks and merge two signatures into one invalid
// line. The first line continues what was already typed. A paste never
// commits. The first rejected line is kept in the input, its error naming
// the line, so nothing pasted is dropped silently.
func (s *SigCollector) HandlePaste(text string) {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	if !strings.Contains(text, "\n") {
		s.In.Paste(text)
		return
	}
	lines := strings.Split(text, "\n")
	lines[0] = s.In.String() + lines[0]
	s.In.Value = s.In.Value[:0]
	s.In.Err = ""
	var bad, why string
	rejected := 0
	for i, l := range lines {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if err := s.addText(l); err != nil {
			if rejected == 0 {
				bad, why = l, fmt.Sprintf("pasted line %d: %v", i+1, err)
			}
			rejected++
		}
	}
	if rejected == 0 {
		return
	}
	if rejected > 1 {
		why += fmt.Sprintf(" (+%d more lines rejected)", rejected-1)
	}
	s.In.Paste(bad) // capped and stripped of control characters like typing
	s.In.Err = why
}

func (s *SigCollector) Hints(k *common.KeyMap) string {
	enter := k.Submit.Help().Key
	return common.Hints("paste deck-sig:… + "+enter, enter+" on empty line commits",
		common.Hint(common.As(k.ExportPayload, "export proposal")), common.Hint(common.As(k.Cancel, "abort")))
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
			add(common.ToneDim, "… (ctrl+e writes it to a proposal file)")
			break
		}
		add(common.ToneAccent, l)
	}
	add(common.ToneDim, "co-signer: ctrl+e → `deck ice sign FILE` → paste the deck-sig line below")
	lines = append(lines, "")
	lines = append(lines, s.In.View(th, "co-signature:", w)...)
	return s.Title, lines
}

// ProposalHeader starts an exported ICE proposal file (node/api's codec,
// the CLI's format: `deck ice VERB --sign-only --out F`, `deck ice sign F`,
// `deck ice commit F`).
const ProposalHeader = api.ICEProposalHeader

// MaxProposalFileBytes bounds what ParseProposalFile accepts.
const MaxProposalFileBytes = api.MaxProposalFileBytes

// ProposalFile renders payload and sigs in the proposal file format; the
// header (ICE or admin) follows the payload.
func ProposalFile(payload []byte, sigs []api.Signature) []byte {
	return api.ProposalFile{Payload: payload, Sigs: sigs}.Marshal()
}

// ParseProposalFile reads the proposal file format back (api.ParseProposalFile).
func ParseProposalFile(data []byte) (payload []byte, sigs []api.Signature, err error) {
	p, err := api.ParseProposalFile(data)
	if err != nil {
		return nil, nil, err
	}
	return p.Payload, p.Sigs, nil
}
