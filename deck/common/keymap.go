package common

import (
	"strings"

	"charm.land/bubbles/v2/key"
)

// KeyMap is every key binding of the deck, defined once. Tabs list the
// bindings they honour (for footer chips and help); the help overlay is
// generated from the same values, so it cannot drift from behaviour.
type KeyMap struct {
	// Global. ForceQuit works everywhere, even with a modal open.
	Quit, ForceQuit, Help, NextTab, PrevTab, Back, Logs, Filter key.Binding
	// Attach opens the picker of bookmarks and recent clusters.
	Attach key.Binding
	// Tabs switch the top-level tab directly: Tabs[i] selects the tab in
	// slot i (1…9, 0, -, =, `, then the shifted !, @, #, $, %; see the
	// TabSlot constants). The help text is the key alone; the deck adds the
	// tab's name when it lists them.
	Tabs []key.Binding
	// Cursor movement, the same on every list.
	Up, Down, Left, Right, Top, Bottom, PageUp, PageDown, Enter key.Binding
	// Admin verbs.
	Cordon, Uncordon, Drain, MaintEnter, MaintExit, ClearAvoid, Invalidate,
	DropReplicas, RestartAll, Restart key.Binding
	// Membership (registry verbs, admin threshold): admit a pending node,
	// revoke any node for good.
	AdmitNode, RevokeNode key.Binding
	// ICE verbs.
	Freeze, Thaw, FlushAvoid, ForceRestart, ForceEvict, ForceCutover,
	KillMigration, ForceDrain key.Binding
	// LOGS / AUDIT / FAILURES.
	Level, Pause, Follow, Export, ICEOnly, Limit, ClearFilters key.Binding
	// BEHAVIOR replay.
	ReplayBack, ReplayForward, ReplayLive key.Binding
	// MESHDB: the query editor (while it has focus it takes every key but
	// ctrl+c and tab/shift+tab) and its results.
	QueryRun, QueryNewline, QueryHistoryPrev, QueryHistoryNext, QueryExample,
	QueryCancel, QueryEdit, QueryPlan key.Binding
	// BLOBS and the blob page: the blob verbs (a signed intent, through
	// the same preview and typed YES as the admin verbs).
	BlobPin, BlobUnpin, BlobDropReplica, BlobAddReplica key.Binding
	// DEMO panel.
	Mark, FaultKill, FaultRestart, FaultPause, FaultResume, FaultPartition,
	FaultHeal, FaultSlow, FaultCrashLoop, FaultCorruptChunk, FaultFillDisk key.Binding
	// Modals and one-line inputs. Submit and Cancel close a dialog, Clear and
	// Erase edit its input.
	Submit, Cancel, Clear, Erase, ExportPayload key.Binding
}

// tabKeys are the direct tab keys in slot order: the unshifted row, then
// its shifted keys from the left.
var tabKeys = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "=", "`",
	"!", "@", "#", "$", "%"}

// Slots of the tabs that are not always there or not in the first row: a
// deck without a demo has no DEMO, and the tabs after it keep their keys.
const (
	TabSlotDemo        = 12
	TabSlotBlobs       = 13
	TabSlotDataforts   = 14
	TabSlotSubnets     = 15
	TabSlotGateways    = 16
	TabSlotAggregators = 17
)

func kb(keys []string, help, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// DefaultKeyMap is the deck's keymap (FEATURES.md key table).
func DefaultKeyMap() *KeyMap {
	k := func(help, desc string, keys ...string) key.Binding { return kb(keys, help, desc) }
	return &KeyMap{
		Quit:      k("q", "quit", "q", "ctrl+c"),
		ForceQuit: k("ctrl+c", "quit", "ctrl+c"),
		Tabs:      tabBindings(),
		Help:      k("?", "help", "?"),
		NextTab:   k("tab", "next tab", "tab"),
		PrevTab:   k("shift+tab", "prev tab", "shift+tab"),
		Back:      k("esc", "back", "esc"),
		Logs:      k("l", "logs of selection", "l"),
		Filter:    k("/", "filter", "/"),
		Attach:    k(":", "attach to a cluster", ":"),

		Up:       k("↑/k", "up", "up", "k"),
		Down:     k("↓/j", "down", "down", "j"),
		Left:     k("←/h", "left", "left", "h"),
		Right:    k("→/l", "right", "right"),
		Top:      k("g", "top", "g", "home"),
		Bottom:   k("G", "bottom", "G", "end"),
		PageUp:   k("pgup", "page up", "pgup", "ctrl+b"),
		PageDown: k("pgdn", "page down", "pgdown", "ctrl+f"),
		Enter:    k("enter", "open", "enter"),

		Cordon:       k("c", "cordon", "c"),
		Uncordon:     k("C", "uncordon", "C"),
		Drain:        k("d", "drain", "d"),
		MaintEnter:   k("m", "enter maint", "m"),
		MaintExit:    k("M", "exit maint", "M"),
		ClearAvoid:   k("a", "clear avoid", "a"),
		Invalidate:   k("i", "invalidate placement", "i"),
		DropReplicas: k("D", "drop replicas", "D"),
		RestartAll:   k("X", "restart all daemons", "X"),
		Restart:      k("r", "restart", "r"),
		// X is restart-all-daemons, so revoke takes V (reVoke): a shifted
		// key, as the verbs that reach furthest are.
		AdmitNode:  k("+", "admit node", "+"),
		RevokeNode: k("V", "revoke node", "V"),

		Freeze:        k("F", "freeze (ICE)", "F"),
		Thaw:          k("T", "thaw (ICE)", "T"),
		FlushAvoid:    k("A", "flush avoid (ICE)", "A"),
		ForceRestart:  k("R", "force-restart (ICE)", "R"),
		ForceEvict:    k("E", "force-evict (ICE)", "E"),
		ForceCutover:  k("O", "force-cutover (ICE)", "O"),
		KillMigration: k("K", "kill migration (ICE)", "K"),
		ForceDrain:    k("ctrl+d", "force-drain (ICE)", "ctrl+d"),

		Level:        k("f", "min level", "f"),
		Pause:        k("p", "pause", "p"),
		Follow:       k("t", "follow", "t"),
		Export:       k("e", "export", "e"),
		ICEOnly:      k("f", "ICE only", "f"),
		Limit:        k("n", "limit", "n"),
		ClearFilters: k("x", "clear filters", "x"),

		ReplayBack:    k("[", "back in time", "["),
		ReplayForward: k("]", "forward in time", "]"),
		ReplayLive:    k("L", "live", "L"),

		QueryRun:         k("enter", "run query", "enter"),
		QueryNewline:     k("alt+enter", "new line", "alt+enter", "ctrl+j"),
		QueryHistoryPrev: k("↑", "earlier query", "up"),
		QueryHistoryNext: k("↓", "later query", "down"),
		QueryExample:     k("ctrl+x", "example", "ctrl+x"),
		QueryCancel:      k("esc", "cancel query / leave editor", "esc"),
		QueryEdit:        k("i", "edit query", "i"),
		QueryPlan:        k("p", "plan / rows", "p"),

		BlobPin:         k("p", "pin blob", "p"),
		BlobUnpin:       k("u", "unpin blob", "u"),
		BlobDropReplica: k("D", "drop a replica", "D"),
		BlobAddReplica:  k("r", "re-replicate (+1)", "r"),

		Mark:           k("space", "mark", "space"),
		FaultKill:      k("x", "kill", "x"),
		FaultRestart:   k("s", "start", "s"),
		FaultPause:     k("p", "pause", "p"),
		FaultResume:    k("u", "resume", "u"),
		FaultPartition: k("P", "partition", "P"),
		FaultHeal:      k("H", "heal all", "H"),
		FaultSlow:      k("w", "slow link", "w"),
		FaultCrashLoop: k("z", "crashloop daemon", "z"),
		// b for bit rot.
		FaultCorruptChunk: k("b", "corrupt a blob chunk", "b"),
		FaultFillDisk:     k("f", "fill datafort disk", "f"),

		Submit:        k("enter", "submit", "enter"),
		Cancel:        k("esc", "cancel", "esc"),
		Clear:         k("ctrl+u", "clear", "ctrl+u"),
		Erase:         k("backspace", "delete", "backspace", "ctrl+h"),
		ExportPayload: k("ctrl+e", "export payload", "ctrl+e"),
	}
}

func tabBindings() []key.Binding {
	out := make([]key.Binding, len(tabKeys))
	for i, s := range tabKeys {
		out[i] = kb([]string{s}, s, "")
	}
	return out
}

// TabKey is the direct key of the i-th tab; tabs past the last key have
// none (a disabled binding that matches nothing).
func (k *KeyMap) TabKey(i int) key.Binding {
	if i < 0 || i >= len(k.Tabs) {
		return key.NewBinding(key.WithDisabled())
	}
	return k.Tabs[i]
}

// Hint is one binding as footer text, "key desc", for dialogs whose footer
// is a sentence rather than chips. A disabled binding is "".
func Hint(b key.Binding) string {
	if !b.Enabled() {
		return ""
	}
	h := b.Help()
	if h.Desc == "" {
		return h.Key
	}
	return h.Key + " " + h.Desc
}

// Hints joins footer parts (Hint results and free text) with HintSep,
// skipping empty ones.
func Hints(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(HintSep)
		}
		b.WriteString(p)
	}
	return b.String()
}

// HintSep separates the parts of a footer hint.
const HintSep = " · "

// As is b with its help description replaced: the same key says what it
// does in one dialog ("enter pick", "esc abort").
func As(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}

// Global returns the bindings that work on every screen, for help.
func (k *KeyMap) Global() []key.Binding {
	return []key.Binding{k.NextTab, k.PrevTab, k.Logs, k.Back, k.Filter, k.Attach, k.Help, k.Quit}
}

// Navigation returns the cursor bindings shared by every list.
func (k *KeyMap) Navigation() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Top, k.Bottom, k.PageUp, k.PageDown, k.Enter}
}
