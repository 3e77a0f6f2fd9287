package transport

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/wire"
)

// fragments splits msg the way sendMessage does and parses each piece back.
func fragments(t *testing.T, id uint32, msg []byte) []struct {
	f    wire.Fragment
	data []byte
} {
	t.Helper()
	count := wire.FragmentCount(len(msg))
	var out []struct {
		f    wire.Fragment
		data []byte
	}
	for i := range count {
		b := make([]byte, wire.FragmentHeaderSize+wire.FragmentLen(len(msg), i))
		wire.PutFragment(b, &wire.Fragment{MessageID: id, Total: uint32(len(msg)), Index: uint16(i), Count: uint16(count)})
		copy(b[wire.FragmentHeaderSize:], msg[i*wire.MaxFragmentBytes:])
		var f wire.Fragment
		d, err := wire.ParseFragment(b, &f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct {
			f    wire.Fragment
			data []byte
		}{f, d})
	}
	return out
}

func TestReassemblyOutOfOrderAndDuplicates(t *testing.T) {
	msg := make([]byte, 5*wire.MaxFragmentBytes+17)
	rand.Read(msg)
	fs := fragments(t, 1, msg)
	lim := reassemblyLimits{maxMessages: 4, maxBytes: 1 << 20, timeout: time.Second}
	var r reassembler
	now := time.Now()
	order := []int{5, 0, 3, 3, 1, 4, 0, 2}
	var got []byte
	for i, k := range order {
		out, err := r.add(now, lim, &fs[k].f, fs[k].data, false)
		if err != nil {
			t.Fatal(err)
		}
		if out != nil && i != len(order)-1 {
			t.Fatalf("completed early at step %d", i)
		}
		got = out
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("reassembled message differs")
	}
	if len(r.msgs) != 0 || r.bytes != 0 {
		t.Fatalf("state left behind: %d msgs %d bytes", len(r.msgs), r.bytes)
	}
}

func TestReassemblyBounds(t *testing.T) {
	big := make([]byte, 3*wire.MaxFragmentBytes)
	now := time.Now()
	tests := []struct {
		name string
		lim  reassemblyLimits
		run  func(r *reassembler, lim reassemblyLimits) error
		want error
	}{
		{
			name: "too many partial messages",
			lim:  reassemblyLimits{maxMessages: 2, maxBytes: 1 << 20, timeout: time.Minute},
			run: func(r *reassembler, lim reassemblyLimits) error {
				for id := uint32(1); id <= 3; id++ {
					f := fragments(t, id, big)[0]
					if _, err := r.add(now, lim, &f.f, f.data, false); err != nil {
						return err
					}
				}
				return nil
			},
			want: ErrReassemblyFull,
		},
		{
			name: "byte budget",
			lim:  reassemblyLimits{maxMessages: 8, maxBytes: len(big) + 10, timeout: time.Minute},
			run: func(r *reassembler, lim reassemblyLimits) error {
				for id := uint32(1); id <= 2; id++ {
					f := fragments(t, id, big)[0]
					if _, err := r.add(now, lim, &f.f, f.data, false); err != nil {
						return err
					}
				}
				return nil
			},
			want: ErrReassemblyBytes,
		},
		{
			name: "fragment disagreeing on total",
			lim:  reassemblyLimits{maxMessages: 8, maxBytes: 1 << 20, timeout: time.Minute},
			run: func(r *reassembler, lim reassemblyLimits) error {
				a := fragments(t, 1, big)[0]
				b := fragments(t, 1, big[:len(big)-1])[1]
				if _, err := r.add(now, lim, &a.f, a.data, false); err != nil {
					return err
				}
				_, err := r.add(now, lim, &b.f, b.data, false)
				return err
			},
			want: ErrReassemblyMismatch,
		},
		{
			name: "expired partials free their budget",
			lim:  reassemblyLimits{maxMessages: 1, maxBytes: len(big), timeout: time.Second},
			run: func(r *reassembler, lim reassemblyLimits) error {
				a := fragments(t, 1, big)[0]
				b := fragments(t, 2, big)[0]
				if _, err := r.add(now, lim, &a.f, a.data, false); err != nil {
					return err
				}
				_, err := r.add(now.Add(2*time.Second), lim, &b.f, b.data, false)
				return err
			},
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r reassembler
			err := tc.run(&r, tc.lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(r.msgs) > tc.lim.maxMessages || r.bytes > tc.lim.maxBytes {
				t.Fatalf("bounds exceeded: %d msgs %d bytes", len(r.msgs), r.bytes)
			}
		})
	}
}

// TestReassemblyTimeoutOverTransport: a peer that sends only part of a
// message leaves nothing behind once ReassemblyTimeout passes.
func TestReassemblyTimeoutOverTransport(t *testing.T) {
	a, b := pair(t)
	b.mu.Lock()
	b.cfg.ReassemblyTimeout = 200 * time.Millisecond
	b.mu.Unlock()
	a.mu.Lock()
	kp := a.peers[b.Self()].current
	addr := a.peers[b.Self()].addr
	a.mu.Unlock()
	msg := make([]byte, 3*wire.MaxFragmentBytes)
	f := fragments(t, 4242, msg)[0]
	plain := make([]byte, wire.FragmentHeaderSize+len(f.data))
	wire.PutFragment(plain, &f.f)
	copy(plain[wire.FragmentHeaderSize:], f.data)
	a.seal(kp, addr, 2, wire.FlagFragment, plain)
	eventually(t, "partial message appears", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.peers[a.Self()].reasm.msgs) == 1
	})
	eventually(t, "partial message expires", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		r := &b.peers[a.Self()].reasm
		return len(r.msgs) == 0 && r.bytes == 0
	})
}

// TestAttackBulkChunksCannotCrowdOutControlReassembly: a peer's bulk
// messages in flight (blob chunks, possibly never completed) take at most
// their share of its reassembly budget; a fragmented gossip or control
// message from the same peer still finds room.
func TestAttackBulkChunksCannotCrowdOutControlReassembly(t *testing.T) {
	lim := reassemblyLimits{maxMessages: 8, maxBytes: 1 << 20, timeout: 5 * time.Second, maxBulkMessages: 4, maxBulkBytes: 1 << 19}
	var r reassembler
	now := time.Now()
	msg := make([]byte, 3*wire.MaxFragmentBytes)
	refused := 0
	// Eight bulk messages, each with only its first fragment delivered.
	for id := uint32(1); id <= 8; id++ {
		fs := fragments(t, id, msg)
		if _, err := r.add(now, lim, &fs[0].f, fs[0].data, true); err != nil {
			if !errors.Is(err, ErrReassemblyFull) {
				t.Fatal(err)
			}
			refused++
		}
	}
	if refused != 4 || r.bulkN != 4 {
		t.Fatalf("bulk partials: %d held, %d refused", r.bulkN, refused)
	}
	// Every control message still reassembles.
	for id := uint32(100); id < 104; id++ {
		fs := fragments(t, id, msg)
		var out []byte
		for k := range fs {
			o, err := r.add(now, lim, &fs[k].f, fs[k].data, false)
			if err != nil {
				t.Fatalf("control message %d refused: %v", id, err)
			}
			out = o
		}
		if !bytes.Equal(out, msg) {
			t.Fatal("control message damaged")
		}
	}
	// A fragment claiming another class than its message is refused.
	fs := fragments(t, 1, msg)
	if _, err := r.add(now, lim, &fs[1].f, fs[1].data, false); !errors.Is(err, ErrReassemblyMismatch) {
		t.Fatalf("class switch: %v", err)
	}
}
