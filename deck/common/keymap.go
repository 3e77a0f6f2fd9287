package common

import "charm.land/bubbles/v2/key"

// KeyMap is every key binding of the deck, defined once. Tabs list the
// bindings they honour (for footer chips and help); the help overlay is
// generated from the same values, so it cannot drift from behaviour.
type KeyMap struct {
	// Global.
	Quit, Help, NextTab, PrevTab, Back, Logs, Filter key.Binding
	// Cursor movement, the same on every list.
	Up, Down, Left, Right, Top, Bottom, PageUp, PageDown, Enter key.Binding
	// Admin verbs.
	Cordon, Uncordon, Drain, MaintEnter, MaintExit, ClearAvoid, Invalidate,
	DropReplicas, RestartAll, Restart key.Binding
	// ICE verbs.
	Freeze, Thaw, FlushAvoid, ForceRestart, ForceEvict, ForceCutover,
	KillMigration, ForceDrain key.Binding
	// LOGS / AUDIT / FAILURES.
	Level, Pause, Follow, Export, ICEOnly, Limit, ClearFilters key.Binding
	// BEHAVIOR replay.
	ReplayBack, ReplayForward, ReplayLive key.Binding
	// DEMO panel.
	Mark, FaultKill, FaultRestart, FaultPause, FaultResume, FaultPartition,
	FaultHeal, FaultSlow, FaultCrashLoop key.Binding
	// Modals.
	Submit, Cancel, ExportPayload key.Binding
}

func kb(keys []string, help, desc string) key.Binding {
	return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
}

// DefaultKeyMap is the deck's keymap (FEATURES.md key table).
func DefaultKeyMap() *KeyMap {
	k := func(help, desc string, keys ...string) key.Binding { return kb(keys, help, desc) }
	return &KeyMap{
		Quit:    k("q", "quit", "q", "ctrl+c"),
		Help:    k("?", "help", "?"),
		NextTab: k("tab", "next tab", "tab"),
		PrevTab: k("shift+tab", "prev tab", "shift+tab"),
		Back:    k("esc", "back", "esc"),
		Logs:    k("l", "logs of selection", "l"),
		Filter:  k("/", "filter", "/"),

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

		Mark:           k("space", "mark", "space"),
		FaultKill:      k("x", "kill", "x"),
		FaultRestart:   k("s", "start", "s"),
		FaultPause:     k("p", "pause", "p"),
		FaultResume:    k("u", "resume", "u"),
		FaultPartition: k("P", "partition", "P"),
		FaultHeal:      k("H", "heal all", "H"),
		FaultSlow:      k("w", "slow link", "w"),
		FaultCrashLoop: k("z", "crashloop daemon", "z"),

		Submit:        k("enter", "submit", "enter"),
		Cancel:        k("esc", "cancel", "esc"),
		ExportPayload: k("ctrl+e", "export payload", "ctrl+e"),
	}
}

// Global returns the bindings that work on every screen, for help.
func (k *KeyMap) Global() []key.Binding {
	return []key.Binding{k.NextTab, k.PrevTab, k.Logs, k.Back, k.Filter, k.Help, k.Quit}
}

// Navigation returns the cursor bindings shared by every list.
func (k *KeyMap) Navigation() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Top, k.Bottom, k.PageUp, k.PageDown, k.Enter}
}
