package wire

import (
	"encoding/binary"
	"fmt"
)

// Fragment is the prefix of every fragment of a message larger than one
// packet. All fragments but the last carry exactly MaxFragmentBytes, so the
// receiver derives every length from Total and never trusts a sender's idea
// of the fragment size.
type Fragment struct {
	MessageID uint32
	Total     uint32 // whole message length in bytes
	Index     uint16
	Count     uint16
}

// FragmentCount is the number of fragments a message of n bytes needs.
func FragmentCount(n int) int { return (n + MaxFragmentBytes - 1) / MaxFragmentBytes }

// FragmentLen is the data length fragment index of a total-byte message
// must carry.
func FragmentLen(total, index int) int {
	if index == FragmentCount(total)-1 {
		return total - index*MaxFragmentBytes
	}
	return MaxFragmentBytes
}

// PutFragment writes f into b[:FragmentHeaderSize].
func PutFragment(b []byte, f *Fragment) {
	_ = b[FragmentHeaderSize-1]
	binary.BigEndian.PutUint32(b[0:], f.MessageID)
	binary.BigEndian.PutUint32(b[4:], f.Total)
	binary.BigEndian.PutUint16(b[8:], f.Index)
	binary.BigEndian.PutUint16(b[10:], f.Count)
}

// ParseFragment decodes a fragment payload and returns its data (aliasing
// payload). It checks the fragment is consistent on its own: total within
// MaxMessageBytes, count derived from total, index in range and the data
// length exactly what that index must carry.
func ParseFragment(payload []byte, f *Fragment) ([]byte, error) {
	if len(payload) < FragmentHeaderSize {
		return nil, fmt.Errorf("%w: fragment of %d bytes", ErrShort, len(payload))
	}
	f.MessageID = binary.BigEndian.Uint32(payload[0:])
	f.Total = binary.BigEndian.Uint32(payload[4:])
	f.Index = binary.BigEndian.Uint16(payload[8:])
	f.Count = binary.BigEndian.Uint16(payload[10:])
	if f.Total == 0 || f.Total > MaxMessageBytes {
		return nil, fmt.Errorf("%w: fragment total %d", ErrLength, f.Total)
	}
	if int(f.Count) != FragmentCount(int(f.Total)) {
		return nil, fmt.Errorf("%w: fragment count %d for %d bytes", ErrValue, f.Count, f.Total)
	}
	if f.Index >= f.Count {
		return nil, fmt.Errorf("%w: fragment index %d of %d", ErrValue, f.Index, f.Count)
	}
	data := payload[FragmentHeaderSize:]
	if want := FragmentLen(int(f.Total), int(f.Index)); len(data) != want {
		return nil, fmt.Errorf("%w: fragment %d carries %d bytes, want %d", ErrLength, f.Index, len(data), want)
	}
	return data, nil
}
