package common

import (
	"testing"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

func TestHintsJoinBindings(t *testing.T) {
	k := DefaultKeyMap()
	got := Hints(Hint(k.Submit), "", "free text", Hint(As(k.Cancel, "abort")), Hint(key.NewBinding(key.WithDisabled())))
	if want := "enter submit · free text · esc abort"; got != want {
		t.Fatalf("Hints = %q, want %q", got, want)
	}
	if k.Cancel.Help().Desc != "cancel" {
		t.Fatalf("As changed the keymap's own binding: %q", k.Cancel.Help().Desc)
	}
}

func TestTabKeys(t *testing.T) {
	k := DefaultKeyMap()
	for i, want := range []string{"1", "9", "0", "-", "="} {
		idx := []int{0, 8, 9, 10, 11}[i]
		b := k.TabKey(idx)
		if b.Help().Key != want || !b.Enabled() {
			t.Errorf("tab %d key %q (enabled %v), want %q", idx, b.Help().Key, b.Enabled(), want)
		}
	}
	past := k.TabKey(len(k.Tabs))
	if past.Enabled() || key.Matches(tea.KeyPressMsg{Code: '1', Text: "1"}, past) {
		t.Fatal("a tab past the last key has a working key")
	}
}
