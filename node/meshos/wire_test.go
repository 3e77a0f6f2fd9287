package meshos

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/deck-mesh/deck/node/snapshot"
)

func wireSamples() []*message {
	return []*message{
		{Kind: msgMigOffer, Mig: "0000000000001111>rep-0#1", Daemon: "rep-0", Group: "rep", Index: 0, DKind: "counter",
			Lineage: snapshot.Lineage{Kind: snapshot.GroupReplica, Group: "rep", Index: 0, Term: 3, Synced: 9}, State: []byte{0, 0, 0, 0, 0, 0, 0, 42}},
		{Kind: msgMigReplay, Mig: "m", State: []byte("final")},
		{Kind: msgMigCutover, Mig: "m", Gen: 77},
		{Kind: msgMigAbort, Mig: "m", Reason: "killed by operator"},
		{Kind: msgMigAck, Mig: "m", Phase: snapshot.PhaseCutover, OK: true, Gen: 5},
		{Kind: msgChainAppend, Chain: "rep", Term: 2, Daemon: "rep-1", State: []byte("x")},
		{Kind: msgChainSyncReq, Chain: "rep", Seq: 10, Cursor: "rep-0"},
		{Kind: msgChainSyncResp, Chain: "rep", Term: 2, Seq: 12, Reset: true, Done: true,
			Entries: []chainEntry{{Seq: 11, Daemon: "rep-0", State: []byte("a")}, {Seq: 12, Daemon: "rep-1", State: []byte{}}}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range wireSamples() {
		b, err := m.encode()
		if err != nil {
			t.Fatalf("encode %d: %v", m.Kind, err)
		}
		got, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("decode %d: %v", m.Kind, err)
		}
		if m.State == nil && got.State != nil && len(got.State) == 0 {
			got.State = nil
		}
		if !reflect.DeepEqual(normalize(m), normalize(got)) {
			t.Fatalf("kind %d round trip:\n%+v\n%+v", m.Kind, m, got)
		}
	}
}

// normalize makes empty and nil byte slices compare equal.
func normalize(m *message) message {
	c := *m
	if len(c.State) == 0 {
		c.State = nil
	}
	c.Entries = nil
	for _, e := range m.Entries {
		if len(e.State) == 0 {
			e.State = nil
		}
		c.Entries = append(c.Entries, e)
	}
	return c
}

func TestWireRejects(t *testing.T) {
	good, _ := wireSamples()[0].encode()
	long := make([]byte, IDBytesMax+1)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{9}, good[1:]...)},
		{"unknown kind", []byte{wireVersion, 99}},
		{"zero kind", []byte{wireVersion, 0}},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"oversize id", append([]byte{wireVersion, byte(msgMigCutover), byte(len(long) >> 8), byte(len(long))}, append(long, make([]byte, 8)...)...)},
		{"huge state length", []byte{wireVersion, byte(msgMigReplay), 0, 1, 'm', 0xff, 0xff, 0xff, 0xff}},
		{"too many entries", []byte{wireVersion, byte(msgChainSyncResp), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}},
		{"bad bool", []byte{wireVersion, byte(msgMigAck), 0, 1, 'm', 1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"bad phase", []byte{wireVersion, byte(msgMigAck), 0, 1, 'm', 99, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeMessage(tc.b); !errors.Is(err, ErrWire) {
				t.Fatalf("err = %v, want ErrWire", err)
			}
		})
	}
	if _, err := (&message{Kind: msgMigReplay, State: make([]byte, DaemonStateBytesMax+1)}).encode(); err == nil {
		t.Fatal("encode accepted oversize state")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range wireSamples() {
		b, _ := m.encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		out, err := m.encode()
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, out)
		}
	})
}
