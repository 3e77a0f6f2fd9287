package workloads

import (
	"testing"
)

// FuzzRestore feeds arbitrary bytes to every kind's Restore: migration
// state arrives from another node, so it must never panic, and whatever it
// accepts must snapshot again and survive a few ticks.
func FuzzRestore(f *testing.F) {
	for _, tc := range cases() {
		d := newDaemon(tc.kind, tc.info, testOpts())
		for range 20 {
			d.advance(DefaultTick)
		}
		b, err := d.Snapshot()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"kind":"drone","id":"x","state":{"route":[],"next":0}}`))
	f.Add([]byte(`{"v":1,"kind":"stage","id":"x","state":{"cues":[{"dept":"LX","num":1,"label":"a","wait":1e308,"fade":0}],"next":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tc := range cases() {
			d := newDaemon(tc.kind, tc.info, testOpts())
			if err := d.Restore(data); err != nil {
				continue
			}
			if _, err := d.Snapshot(); err != nil {
				t.Fatalf("%s: accepted state does not snapshot: %v", tc.name, err)
			}
			for range 5 {
				d.advance(DefaultTick)
			}
			if s := d.Saturation(); s < 0 || s > 1 {
				t.Fatalf("%s: saturation %v after restore", tc.name, s)
			}
			if _, err := d.Snapshot(); err != nil {
				t.Fatalf("%s: state broke after restore: %v", tc.name, err)
			}
		}
	})
}
