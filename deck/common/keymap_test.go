package common

import (
	"reflect"
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
	for i, want := range []string{"1", "9", "0", "-", "=", "`", "!", "@", "#", "$", "%"} {
		idx := []int{0, 8, 9, 10, 11, TabSlotDemo, TabSlotBlobs, TabSlotDataforts, TabSlotSubnets, TabSlotGateways, TabSlotAggregators}[i]
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

// TestMembershipKeysAreTheirOwn: admit (+) and revoke (V) share their keys
// with no other binding anywhere, so neither can fire another verb on any
// screen (X, the first choice for revoke, is restart-all-daemons).
func TestMembershipKeysAreTheirOwn(t *testing.T) {
	k := DefaultKeyMap()
	owners := map[string][]string{}
	v := reflect.ValueOf(*k)
	for i := 0; i < v.NumField(); i++ {
		var bs []key.Binding
		switch f := v.Field(i).Interface().(type) {
		case key.Binding:
			bs = []key.Binding{f}
		case []key.Binding:
			bs = f
		}
		for _, b := range bs {
			for _, s := range b.Keys() {
				owners[s] = append(owners[s], v.Type().Field(i).Name)
			}
		}
	}
	for _, s := range []string{"+", "V", "#", "$", "%"} {
		if len(owners[s]) != 1 {
			t.Errorf("key %q is bound by %v", s, owners[s])
		}
	}
	if got := owners["+"]; len(got) == 0 || got[0] != "AdmitNode" {
		t.Errorf("+ is %v", got)
	}
	if got := owners["V"]; len(got) == 0 || got[0] != "RevokeNode" {
		t.Errorf("V is %v", got)
	}
}
