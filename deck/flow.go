package deck

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/deck-mesh/deck/deck/common"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/tabs"
	"github.com/deck-mesh/deck/widgets"
)

// Parameter bounds of the prompts.
const (
	DrainMin             = time.Second
	DrainMax             = 24 * time.Hour
	MaintMin             = 10 * time.Second
	MaintMax             = 24 * time.Hour
	FreezeMin            = 5 * time.Second // DESIGN §5: freeze TTL 5 s – 30 min
	FreezeMax            = 30 * time.Minute
	SlowDelayMin         = time.Millisecond
	SlowDelayMax         = 10 * time.Second
	FreezeReasonMaxRunes = 200
	// ExportFileMode keeps exported logs and payloads private to the user.
	ExportFileMode = 0o600
)

// Flow results, produced by the commands the flows start.
type (
	previewMsg struct {
		a   api.Action
		br  api.BlastRadius
		err error
	}
	simulatedMsg struct {
		a   api.Action
		sp  api.SimulatedProposal
		err error
	}
	// preparedMsg is an admin action bound to the preview its operator
	// confirmed, ready to sign (or refused: the preview changed).
	preparedMsg struct {
		a   api.Action
		sp  api.SimulatedProposal
		err error
	}
	// blobCommittedMsg is a blob verb's signed intent, taken by the
	// blob's holders (or refused: the preview changed, no operator key).
	blobCommittedMsg struct {
		a    api.Action
		what string
		info api.BlobInfo
		err  error
	}
	committedMsg struct {
		a api.Action
		// what names the action as it was when committed: a revoked node
		// leaves the view, and would be named by its bare id by then.
		what string
		r    api.Receipt
		err  error
	}
	exportedMsg struct {
		path     string
		n        int
		proposal bool   // n is then the number of signatures in the file
		group    string // proposal: "ice" or "admin", the CLI group that signs it
		err      error
	}
	injectedMsg struct {
		f   api.Fault
		err error
	}
)

func (m *Model) push(md widgets.Modal) { m.modals = append(m.modals, md) }

func (m *Model) nodeName(id api.NodeID) string { return tabs.NodeName(m.c.Snap, id) }

// describe names an action for toasts and titles: "drain straylight for 5m00s".
func (m *Model) describe(a api.Action) string {
	return string(a.Verb) + " " + strings.TrimPrefix(tabs.AuditTarget(m.c.Snap, a), "node ")
}

// shortEventID is the first characters of an event id, enough to find it
// in AUDIT and `deck audit` without a 64-digit wall of hex in a toast.
func shortEventID(id string) string {
	const n = 12
	if len(id) > n {
		return id[:n]
	}
	return id
}

// startAction runs an action flow from its first missing parameter.
func (m *Model) startAction(req common.ActionMsg) tea.Cmd {
	a := req.Action
	if m.c.ReadOnly {
		return m.toast(fmt.Sprintf("read-only (%s): %s is disabled", m.c.ReadOnlyReason, a.Verb), true)
	}
	// Membership verbs apply to consoles too: revoking a console's node id
	// cuts that console off.
	if a.Node != 0 && !a.Verb.IsRegistry() && tabs.IsConsole(m.c.Snap, a.Node) {
		return m.toast(fmt.Sprintf("%s is a console (observer) node: it hosts no daemons or replicas, so %s does not apply", m.nodeName(a.Node), a.Verb), true)
	}
	switch {
	case req.NeedReason:
		p := widgets.NewPrompt("ICE "+string(a.Verb), "reason:", "")
		p.In.Max = FreezeReasonMaxRunes
		p.Help = []string{"Why is the cluster being frozen? It is recorded in the ledger and shown on every screen."}
		p.Validate = func(s string) error {
			if s == "" {
				return errors.New("a reason is required")
			}
			return nil
		}
		p.OnSubmit = func(s string) tea.Cmd {
			req.Action.Reason, req.NeedReason = s, false
			return m.startAction(req)
		}
		m.push(p)
		return nil
	case req.NeedDuration != "":
		lo, hi := durationBounds(a.Verb)
		p := widgets.NewPrompt(m.describe(a), req.NeedDuration+":", "")
		p.Help = []string{fmt.Sprintf("A duration like 30s, 5m or 1h (%s – %s).", widgets.ShortDuration(lo), widgets.ShortDuration(hi))}
		if why := durationMeaning(a.Verb); why != "" {
			p.Help = append(p.Help, why)
		}
		p.Validate = func(s string) error { _, err := widgets.ParseDuration(s, lo, hi); return err }
		p.OnSubmit = func(s string) tea.Cmd {
			d, err := widgets.ParseDuration(s, lo, hi)
			if err != nil {
				return m.toast(err.Error(), true)
			}
			req.Action.Duration, req.NeedDuration = d, ""
			return m.startAction(req)
		}
		m.push(p)
		return nil
	case req.PickHolder || req.PickNode:
		var opts []widgets.PickOption
		title := "force-evict: pick the holder to evict from " + a.Chain
		for _, ch := range m.c.Snap.Chains {
			if ch.Name != a.Chain {
				continue
			}
			if req.PickHolder {
				for _, h := range ch.Holders {
					label := m.nodeName(h) + " " + h.Short()
					if h == ch.Leader {
						label += " (leader)"
					}
					opts = append(opts, widgets.PickOption{Label: label, Node: h})
				}
			} else {
				title = "force-cutover: pick the new leader of " + a.Chain
				for i := range m.c.Snap.Nodes {
					n := &m.c.Snap.Nodes[i]
					if n.ID == ch.Leader || n.Observer {
						continue // consoles never hold replicas
					}
					label := m.nodeName(n.ID) + " " + n.ID.Short() + " · " + n.Health.String()
					for _, h := range ch.Holders {
						if h == n.ID {
							label += " · holder"
						}
					}
					opts = append(opts, widgets.PickOption{Label: label, Node: n.ID})
				}
			}
		}
		p := &widgets.Picker{Title: "ICE " + string(a.Verb), Prompt: title, Options: opts}
		p.OnPick = func(o []widgets.PickOption) tea.Cmd {
			req.Action.Peer, req.PickHolder, req.PickNode = o[0].Node, false, false
			return m.startAction(req)
		}
		m.push(p)
		return nil
	}
	if l, ok := m.lockout(a); ok {
		return m.toast(fmt.Sprintf("locked out: %s on %s for %s more (ICE cooldown after the last commit)", a.Verb, tabs.NameIDs(m.c.Snap, l.Target), widgets.Countdown(m.c.Now, l.Until)), true)
	}
	client, ctx := m.c.Client, m.c.Ctx
	if a.Verb.IsICE() {
		return func() tea.Msg {
			p, err := client.ICE().Propose(ctx, a)
			if err != nil {
				return simulatedMsg{a: a, err: err}
			}
			sp, err := p.Simulate(ctx)
			return simulatedMsg{a: a, sp: sp, err: err}
		}
	}
	return func() tea.Msg {
		br, err := client.Preview(ctx, a)
		return previewMsg{a: a, br: br, err: err}
	}
}

// durationMeaning says what the prompted duration does, for the prompt.
func durationMeaning(v api.Verb) string {
	switch v {
	case api.VerbDrain:
		return "The node drains its daemons and replicas to other nodes within this time."
	case api.VerbEnterMaintenance:
		return "Deadline for the drain; past it the node reports drain-failed."
	case api.VerbFreezeCluster:
		return "The freeze thaws by itself after this; T thaws earlier."
	}
	return ""
}

func durationBounds(v api.Verb) (time.Duration, time.Duration) {
	switch v {
	case api.VerbFreezeCluster:
		return FreezeMin, FreezeMax
	case api.VerbEnterMaintenance:
		return MaintMin, MaintMax
	}
	return DrainMin, DrainMax
}

// lockout finds an active ICE cooldown on the action, so the operator learns
// before proposing.
func (m *Model) lockout(a api.Action) (l struct {
	Target string
	Until  time.Time
}, ok bool) {
	for _, lo := range m.c.Snap.Lockouts {
		if lo.Verb == string(a.Verb) && lo.Target == a.Target() && lo.Until.After(m.c.Now) {
			l.Target, l.Until = lo.Target, lo.Until
			return l, true
		}
	}
	return l, false
}

func (m *Model) refused(a api.Action) func(string) tea.Cmd {
	return func(typed string) tea.Cmd {
		if typed == "" {
			return m.toast("cancelled: "+m.describe(a)+" — nothing committed", false)
		}
		return m.toast(fmt.Sprintf("refused: typed %q, not YES — nothing committed", widgets.Truncate(typed, 20)), true)
	}
}

// prepareCmd binds an admin action to the preview its operator confirmed:
// the console recomputes the projection and the node refuses when it moves
// anything differently (preparedMsg carries the refusal and the new preview).
func (m *Model) prepareCmd(confirmed api.BlastRadius) tea.Cmd {
	client, ctx := m.c.Client, m.c.Ctx
	a := confirmed.Action
	return func() tea.Msg {
		sp, err := client.Admin().Prepare(ctx, confirmed)
		return preparedMsg{a: a, sp: sp, err: err}
	}
}

// confirmAdmin shows an admin action's preview and asks for YES; note and
// changed say why it is asked again, if it is.
func (m *Model) confirmAdmin(a api.Action, br api.BlastRadius, note string, changed []string) {
	if a.Verb == api.VerbAdmitNode && note == "" && len(a.OperatorKey) == ed25519.PublicKeySize {
		// The whole key the admission binds, in the form the node page
		// shows: what the operator admits, not just its id.
		note = "admits key " + identity.PublicKeyString(a.OperatorKey)
	}
	confirm := func() tea.Cmd { return m.prepareCmd(br) }
	if a.Verb.IsBlob() {
		confirm = func() tea.Cmd { return m.blobCommitCmd(br) }
		if note == "" {
			note = "a signed blob intent for its holders, not an admin-ledger event"
		}
	}
	m.push(&widgets.Confirm{
		Title: "CONFIRM " + m.describe(a), Radius: m.namedRadius(br), Name: m.nodeName, Note: note, Changed: changed,
		OnConfirm: confirm,
		OnRefuse:  m.refused(a),
	})
}

// blobCommitCmd commits a confirmed blob verb: the Client signs the new
// intent with this operator's key after projecting again, and refuses
// with the new preview when the copies that move changed.
func (m *Model) blobCommitCmd(confirmed api.BlastRadius) tea.Cmd {
	a := confirmed.Action
	what := m.describe(a)
	bc, ok := m.c.Client.(api.BlobClient)
	if !ok {
		return m.toast(what+": this console's client has no datafort surface", true)
	}
	m.inflight++
	ctx := m.c.Ctx
	return func() tea.Msg {
		info, err := bc.Blobs().Commit(ctx, confirmed)
		return blobCommittedMsg{a: a, what: what, info: info, err: err}
	}
}

// previewChanged reopens the confirmation on the new preview when a commit
// was refused because the projection moved on since it was confirmed.
func (m *Model) previewChanged(a api.Action, err error) bool {
	var pc *api.PreviewChangedError
	if !errors.As(err, &pc) || a.Verb.IsICE() {
		return false
	}
	note := "the blast radius changed since you confirmed — nothing committed; review and confirm again"
	m.confirmAdmin(a, pc.Preview, note, m.named(pc.Changes))
	return true
}

// named is the node's texts (changes, warnings), which name nodes by id,
// with every node named as every screen names it.
func (m *Model) named(texts []string) []string {
	if len(texts) == 0 {
		return texts
	}
	out := make([]string, len(texts))
	for i, t := range texts {
		if m.c.Snap != nil {
			for j := range m.c.Snap.Nodes {
				id := m.c.Snap.Nodes[j].ID
				t = strings.ReplaceAll(t, id.String(), m.nodeName(id))
			}
		}
		out[i] = t
	}
	return out
}

// namedRadius is br for display: its warnings named (the confirmed radius
// itself travels to the node unchanged).
func (m *Model) namedRadius(br api.BlastRadius) api.BlastRadius {
	br.Warnings = m.named(br.Warnings)
	return br
}

// iceCommitCmd commits a simulated proposal (ICE or prepared admin) with sigs.
func (m *Model) iceCommitCmd(sp api.SimulatedProposal, sigs []api.Signature) tea.Cmd {
	m.inflight++
	ctx := m.c.Ctx
	a := sp.Action()
	what := m.describe(a)
	return func() tea.Msg {
		r, err := sp.Commit(ctx, sigs)
		return committedMsg{a: a, what: what, r: r, err: err}
	}
}

func (m *Model) iceThreshold() int {
	if t := m.c.Snap.ICEThreshold; t > 0 {
		return t
	}
	return 1
}

func (m *Model) adminThreshold() int {
	if t := m.c.Snap.AdminThreshold; t > 0 {
		return t
	}
	return 1
}

func (m *Model) flowResult(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case previewMsg:
		if msg.err != nil {
			return m.toast("preview of "+m.describe(msg.a)+" failed: "+errText(msg.err), true)
		}
		m.confirmAdmin(msg.a, msg.br, "", nil)
	case preparedMsg:
		if m.previewChanged(msg.a, msg.err) {
			return nil
		}
		if msg.err != nil {
			return m.toast(m.describe(msg.a)+" failed: "+errText(msg.err), true)
		}
		return m.signAndCollect(msg.sp, m.adminThreshold())
	case simulatedMsg:
		if msg.err != nil {
			return m.toast("ICE "+m.describe(msg.a)+": "+errText(msg.err), true)
		}
		sp := msg.sp
		th := m.iceThreshold()
		note := fmt.Sprintf("ICE break-glass · %d of %d operator signatures · commit window until %s", 1, th, widgets.Clock(sp.ExpiresAt()))
		m.push(&widgets.Confirm{
			Title: "ICE " + m.describe(msg.a), Radius: m.namedRadius(sp.BlastRadius()), Name: m.nodeName, Note: note,
			OnConfirm: func() tea.Cmd { return m.signAndCollect(sp, th) },
			OnRefuse:  m.refused(msg.a),
		})
	case committedMsg:
		m.inflight--
		if m.previewChanged(msg.a, msg.err) {
			return nil
		}
		if msg.err != nil {
			return m.toast(msg.what+" failed: "+errText(msg.err), true)
		}
		return m.toast(fmt.Sprintf("✓ committed %s · event %s · see AUDIT (0)", msg.what, shortEventID(msg.r.EventID)), false)
	case blobCommittedMsg:
		m.inflight--
		if m.previewChanged(msg.a, msg.err) {
			return nil
		}
		if msg.err != nil {
			return m.toast(msg.what+" failed: "+errText(msg.err), true)
		}
		return m.toast(fmt.Sprintf("✓ signed %s · intent taken by %d holders · wants %d replicas", msg.what,
			len(msg.info.Holders), msg.info.Replicas), false)
	case exportedMsg:
		if msg.err != nil {
			return m.toast("export failed: "+msg.err.Error(), true)
		}
		if msg.proposal {
			sigs := "1 signature"
			if msg.n != 1 {
				sigs = fmt.Sprintf("%d signatures", msg.n)
			}
			return m.toast(fmt.Sprintf("wrote proposal (%s) to %s · co-signer runs: deck %s sign %s", sigs, msg.path, msg.group, msg.path), false)
		}
		return m.toast(fmt.Sprintf("exported %d lines to %s", msg.n, msg.path), false)
	case injectedMsg:
		if msg.err != nil {
			return m.toast("fault "+string(msg.f.Kind)+" failed: "+errText(msg.err), true)
		}
		return m.toast("fault injected: "+tabs.FaultLine(m.c.Snap, msg.f), false)
	}
	return nil
}

// signAndCollect signs with this operator's key, then either commits (threshold
// 1) or opens the signature collector for co-signatures. ICE proposals and
// admin actions at an admin threshold above one take the same steps.
func (m *Model) signAndCollect(sp api.SimulatedProposal, threshold int) tea.Cmd {
	own, err := sp.Sign()
	if err != nil {
		return m.toast("signing failed: "+errText(err), true)
	}
	if threshold <= 1 {
		return m.iceCommitCmd(sp, []api.Signature{own})
	}
	a := sp.Action()
	group, title, ext := "admin", "SIGNATURES ", "adm"
	if a.Verb.IsICE() {
		group, title, ext = "ice", "ICE SIGNATURES ", "ice"
	}
	sc := &widgets.SigCollector{
		Title: title + m.describe(a), Verb: string(a.Verb),
		Payload: sp.SigningPayload(), Threshold: threshold, ExpiresAt: sp.ExpiresAt(),
		Now: func() time.Time { return m.c.Now }, Sigs: []api.Signature{own},
		Name:  func(id api.NodeID) string { return tabs.OperatorName(m.c.Snap, id) },
		Check: sp.Check,
		OnCommit: func(sigs []api.Signature) tea.Cmd {
			return m.iceCommitCmd(sp, sigs)
		},
		OnAbort: func() tea.Cmd {
			prefix := ""
			if group == "ice" {
				prefix = "ICE "
			}
			return m.toast(prefix+m.describe(a)+" aborted — nothing committed", false)
		},
	}
	sc.OnExport = func() tea.Cmd {
		payload := sp.SigningPayload()
		name := fmt.Sprintf("deck-%s-%s-%s.%s", group, a.Verb, sp.IssuedAt().UTC().Format("20060102-150405"), ext)
		return m.pathPrompt("export proposal for co-signers", name, func(path string) tea.Cmd {
			// The collected signatures are taken now, in Update: the file
			// is what the collector held (`deck ice sign FILE` reads it).
			sigs := append([]api.Signature(nil), sc.Sigs...)
			return writeProposal(path, group, payload, sigs)
		})
	}
	m.push(sc)
	return nil
}

// errText names a typed Client error for a toast.
func errText(err error) string {
	for _, t := range []struct {
		target error
		label  string
	}{
		{api.ErrFrozen, "refused: cluster is frozen"},
		{api.ErrLockedOut, "refused: ICE cooldown"},
		{api.ErrPermission, "not authorized"},
		{api.ErrBelowThreshold, "not enough signatures"},
		{api.ErrExpired, "proposal expired"},
		{api.ErrConsumed, "proposal already used"},
		{api.ErrNotConnected, "not connected"},
		{api.ErrTimeout, "timed out"},
		{api.ErrNotFound, "not found"},
		{api.ErrInvalid, "invalid"},
	} {
		if errors.Is(err, t.target) {
			if msg := err.Error(); !strings.Contains(msg, t.target.Error()) || msg == t.target.Error() {
				return t.label
			}
			return t.label + " (" + err.Error() + ")"
		}
	}
	return err.Error()
}

// pathPrompt asks for a file path (prefilled in ExportDir) and runs write.
func (m *Model) pathPrompt(title, name string, write func(string) tea.Cmd) tea.Cmd {
	p := widgets.NewPrompt(title, "path:", filepath.Join(m.c.ExportDir, name))
	p.Validate = func(s string) error {
		if s == "" {
			return errors.New("a path is required")
		}
		if dir := filepath.Dir(s); dir != "" {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("directory %s does not exist", dir)
			}
		}
		return nil
	}
	p.OnSubmit = write
	m.push(p)
	return nil
}

func writeFile(path string, data []byte, lines int) tea.Cmd {
	return func() tea.Msg {
		err := os.WriteFile(path, data, ExportFileMode)
		return exportedMsg{path: path, n: lines, err: err}
	}
}

// writeProposal writes a proposal file in the CLI's format.
func writeProposal(path, group string, payload []byte, sigs []api.Signature) tea.Cmd {
	return func() tea.Msg {
		err := os.WriteFile(path, widgets.ProposalFile(payload, sigs), ExportFileMode)
		return exportedMsg{path: path, proposal: true, group: group, n: len(sigs), err: err}
	}
}

func (m *Model) startExport(msg common.ExportMsg) tea.Cmd {
	name := fmt.Sprintf("deck-%s-%s.txt", msg.What, m.c.Now.UTC().Format("20060102-150405"))
	return m.pathPrompt("export "+msg.What, name, func(path string) tea.Cmd {
		// Lines are taken now, in Update, so the file is what the screen held.
		lines := msg.Lines()
		data := []byte(strings.Join(lines, "\n") + "\n")
		return writeFile(path, data, len(lines))
	})
}

func (m *Model) startFault(msg common.FaultMsg) tea.Cmd {
	if m.c.Faults == nil {
		return m.toast("fault injection is only available in a demo", true)
	}
	f := msg.Fault
	switch {
	case msg.NeedDelay:
		p := widgets.NewPrompt("slow links", "added delay:", "200ms")
		p.Validate = func(s string) error { _, err := widgets.ParseDuration(s, SlowDelayMin, SlowDelayMax); return err }
		p.OnSubmit = func(s string) tea.Cmd {
			d, _ := widgets.ParseDuration(s, SlowDelayMin, SlowDelayMax)
			msg.Fault.Delay, msg.NeedDelay = d, false
			return m.startFault(msg)
		}
		m.push(p)
		return nil
	case msg.PickDaemon:
		var opts []widgets.PickOption
		if len(f.Nodes) > 0 {
			if n := m.c.Snap.Node(f.Nodes[0]); n != nil {
				for _, d := range n.Daemons {
					opts = append(opts, widgets.PickOption{Label: d.ID + " · " + d.Kind, Value: d.ID})
				}
			}
		}
		p := &widgets.Picker{Title: "crashloop", Prompt: "pick the daemon to crash-loop", Options: opts}
		p.OnPick = func(o []widgets.PickOption) tea.Cmd {
			msg.Fault.Daemon, msg.PickDaemon = o[0].Value, false
			return m.startFault(msg)
		}
		m.push(p)
		return nil
	}
	inj, ctx := m.c.Faults, m.c.Ctx
	return func() tea.Msg { return injectedMsg{f: f, err: inj.Inject(ctx, f)} }
}

func (m *Model) limitPrompt(msg tabs.LimitPromptMsg) tea.Cmd {
	cur := ""
	if msg.Current > 0 {
		cur = strconv.Itoa(msg.Current)
	}
	p := widgets.NewPrompt("audit limit", "show newest:", cur)
	p.Help = []string{"How many of the newest records to show (empty or 0: all)."}
	parse := func(s string) (int, error) {
		if s == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > tabs.AuditLimitMax {
			return 0, fmt.Errorf("enter a number from 0 to %d", tabs.AuditLimitMax)
		}
		return n, nil
	}
	p.Validate = func(s string) error { _, err := parse(s); return err }
	p.OnSubmit = func(s string) tea.Cmd {
		n, _ := parse(s)
		msg.Apply(n)
		return nil
	}
	m.push(p)
	return nil
}
