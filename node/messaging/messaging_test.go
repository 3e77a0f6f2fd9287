package messaging

import "testing"

// TestChannelsDistinct: two services on one channel number read each
// other's messages as garbage (MeshDB once took ChanBlob's 7 and every blob
// put failed); every channel has its own number.
func TestChannelsDistinct(t *testing.T) {
	seen := map[Channel]int{}
	for i, ch := range Channels {
		if j, dup := seen[ch]; dup {
			t.Fatalf("channels %d and %d share number %d", j, i, ch)
		}
		seen[ch] = i
	}
}
