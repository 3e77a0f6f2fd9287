package chain

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

var testT0 = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

func testLogRecord(i int) api.LogRecord {
	return api.LogRecord{
		At:     testT0.Add(time.Duration(i) * time.Millisecond),
		Node:   identity.NodeID(0xabcdef0000000000 + uint64(i%5) + 1),
		Daemon: fmt.Sprintf("daemon-%d", i%3),
		Level:  api.LogLevel(i % 5),
		Text:   fmt.Sprintf("line %d: replica sync ok", i),
	}
}

func TestLogRecordRoundTrip(t *testing.T) {
	tests := []api.LogRecord{
		{},
		{Seq: 1<<64 - 1, At: testT0, Node: 1, Daemon: "d", Level: api.LevelError, Text: "boom"},
		{Seq: 7, At: time.Unix(0, -5).UTC(), Node: 1<<64 - 1, Text: strings.Repeat("x", MaxLogTextBytes)},
		{Seq: 3, At: testT0, Daemon: strings.Repeat("d", MaxDaemonNameBytes), Text: "ünïcødé ✓"},
	}
	for i, rec := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := DecodeLogRecord(AppendLogRecord(nil, rec))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("got %+v, want %+v", got, rec)
			}
		})
	}
}

func TestFailureRecordRoundTrip(t *testing.T) {
	tests := []api.FailureRecord{
		{},
		{Seq: 9, At: testT0, Node: 42, Source: "admit", Reason: "frozen"},
		{Seq: 1, At: testT0, Node: 1, Source: strings.Repeat("s", MaxFailureSourceBytes), Reason: strings.Repeat("r", MaxFailureReasonBytes)},
	}
	for i, rec := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, err := DecodeFailureRecord(AppendFailureRecord(nil, rec))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("got %+v, want %+v", got, rec)
			}
		})
	}
}

func TestRecordDecodersRejectBadInput(t *testing.T) {
	good := AppendLogRecord(nil, testLogRecord(1))
	goodF := AppendFailureRecord(nil, api.FailureRecord{Seq: 1, Source: "s", Reason: "r"})
	longDaemon := AppendLogRecord(nil, api.LogRecord{Daemon: strings.Repeat("d", MaxDaemonNameBytes+1)})
	badLevel := AppendLogRecord(nil, api.LogRecord{Level: api.LevelError + 1})
	tests := []struct {
		name string
		in   []byte
		dec  func([]byte) error
	}{
		{"empty", nil, decLog},
		{"version", append([]byte{9}, good[1:]...), decLog},
		{"trailing", append(append([]byte{}, good...), 0), decLog},
		{"truncated", good[:len(good)-1], decLog},
		{"daemon too long", longDaemon, decLog},
		{"level", badLevel, decLog},
		{"huge length", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, decLog},
		{"failure trailing", append(append([]byte{}, goodF...), 1), decFailure},
		{"failure truncated", goodF[:5], decFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.dec(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func decLog(b []byte) error     { _, err := DecodeLogRecord(b); return err }
func decFailure(b []byte) error { _, err := DecodeFailureRecord(b); return err }

func TestTruncateTextSaysSo(t *testing.T) {
	long := strings.Repeat("é", MaxLogTextBytes) // 2 bytes per rune
	got := truncateText(long, MaxLogTextBytes)
	if len(got) > MaxLogTextBytes || !strings.Contains(got, "truncated") {
		t.Fatalf("len %d, marker present %v", len(got), strings.Contains(got, "truncated"))
	}
	if !strings.HasPrefix(got, "éé") || strings.ContainsRune(got, '\uFFFD') {
		t.Fatal("cut inside a rune")
	}
}

func FuzzDecodeLogRecord(f *testing.F) {
	f.Add(AppendLogRecord(nil, testLogRecord(3)))
	f.Add(AppendLogRecord(nil, api.LogRecord{}))
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeLogRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := DecodeLogRecord(AppendLogRecord(nil, rec))
		if err != nil || !reflect.DeepEqual(again, rec) {
			t.Fatalf("round trip: %+v → %+v, %v", rec, again, err)
		}
	})
}

func FuzzDecodeFailureRecord(f *testing.F) {
	f.Add(AppendFailureRecord(nil, api.FailureRecord{Seq: 4, At: testT0, Node: 7, Source: "migration", Reason: "target refused"}))
	f.Add(AppendFailureRecord(nil, api.FailureRecord{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeFailureRecord(b)
		if err != nil {
			return
		}
		again, err := DecodeFailureRecord(AppendFailureRecord(nil, rec))
		if err != nil || !reflect.DeepEqual(again, rec) {
			t.Fatalf("round trip: %+v → %+v, %v", rec, again, err)
		}
	})
}

func TestVarintsMustBeMinimal(t *testing.T) {
	// Seq 0 written as 0x80 0x00 instead of 0x00.
	padded := []byte{1, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, err := DecodeLogRecord(padded); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("non-minimal uvarint accepted: %v", err)
	}
}
