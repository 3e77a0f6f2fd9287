package gossip

import (
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/deck-mesh/deck/node/codec"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Fit returns a copy of ns that the codec accepts, and how many values it
// had to cut or repair (0: the copy equals ns). Lists are cut to their
// Max*PerSnapshot bound (failures keep the highest sequence numbers, every
// other list its first entries), strings to MaxStringBytes on a rune
// boundary with invalid UTF-8 replaced, and non-finite floats become 0.
// Publish runs it so a node that outgrows a bound keeps gossiping, with the
// cut counted in Stats.Trimmed instead of the node going silent. It cannot
// shrink a snapshot whose every field is in bounds but whose sum exceeds
// MaxSnapshotBytes; encoding then fails.
func Fit(ns *snapshot.NodeSnapshot) (*snapshot.NodeSnapshot, int) {
	out := *ns
	f := fitter{}
	f.str(&out.Label)
	f.str(&out.Addr)
	f.str(&out.Version)
	out.Capabilities = cut(&f, out.Capabilities, MaxCapabilitiesPerSnapshot)
	for i := range out.Capabilities {
		f.str(&out.Capabilities[i])
	}
	r := &out.Resources
	f.f64(&r.CPULoad)
	f.f64(&r.MemUsed)
	f.f64(&r.DiskUsed)
	f.f64(&r.Saturation)
	// Trend is oldest first: keep the newest samples.
	if n := len(r.Trend); n > MaxTrendSamplesPerSnapshot {
		f.n += n - MaxTrendSamplesPerSnapshot
		r.Trend = r.Trend[n-MaxTrendSamplesPerSnapshot:]
	}
	r.Trend = slices.Clone(r.Trend)
	for i := range r.Trend {
		f.f64(&r.Trend[i])
	}
	f.str(&out.Maintenance.Reason)

	out.Daemons = cut(&f, out.Daemons, MaxDaemonsPerSnapshot)
	for i := range out.Daemons {
		d := &out.Daemons[i]
		f.str(&d.ID)
		f.str(&d.Name)
		f.str(&d.Kind)
		f.str(&d.Lineage.Group)
		f.str(&d.HealthReason)
		f.f64(&d.Saturation)
	}
	out.Replicas = cut(&f, out.Replicas, MaxReplicasPerSnapshot)
	for i := range out.Replicas {
		f.str(&out.Replicas[i].Chain)
	}
	out.Avoid = cut(&f, out.Avoid, MaxAvoidPerSnapshot)
	for i := range out.Avoid {
		f.str(&out.Avoid[i].Reason)
	}
	out.Pending = cut(&f, out.Pending, MaxPendingPerSnapshot)
	for i := range out.Pending {
		p := &out.Pending[i]
		f.str(&p.ID)
		f.str(&p.Kind)
		f.str(&p.Target)
		f.str(&p.Blocked)
	}
	out.Failures = recentFailures(&f, out.Failures)
	for i := range out.Failures {
		fl := &out.Failures[i]
		f.str(&fl.Source)
		f.str(&fl.Reason)
	}
	out.Migrations = cut(&f, out.Migrations, MaxMigrationsPerSnapshot)
	for i := range out.Migrations {
		m := &out.Migrations[i]
		f.str(&m.ID)
		f.str(&m.Daemon)
		f.str(&m.Error)
		f.f64(&m.Progress)
	}
	out.Peers = cut(&f, out.Peers, MaxPeersPerSnapshot)
	d := &out.Datafort
	f.f64(&d.ReadsPerSec)
	f.f64(&d.WritesPerSec)
	f.f64(&d.BytesInPerSec)
	f.f64(&d.BytesOutPerSec)
	out.Blobs = cut(&f, out.Blobs, MaxBlobsPerSnapshot)
	for i := range out.Blobs {
		f.str(&out.Blobs[i].Name)
		f.f64(&out.Blobs[i].Heat)
	}
	out.PendingPeers = cut(&f, out.PendingPeers, MaxPendingPeersPerSnapshot)
	for i := range out.PendingPeers {
		p := &out.PendingPeers[i]
		f.str(&p.Addr)
		f.str(&p.Reason)
		if len(p.Key) > 32 {
			f.n++
			p.Key = p.Key[:32]
		}
	}
	return &out, f.n
}

type fitter struct{ n int }

func (f *fitter) str(s *string) {
	v := *s
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if strings.ContainsFunc(v, codec.IsControl) {
		// The codec refuses control characters (they would reach operators'
		// terminals): a line break becomes a space, anything else U+FFFD.
		v = strings.Map(func(c rune) rune {
			switch {
			case c == '\n' || c == '\r' || c == '\t':
				return ' '
			case codec.IsControl(c):
				return '\uFFFD'
			}
			return c
		}, v)
	}
	if len(v) > MaxStringBytes {
		end := MaxStringBytes
		for end > 0 && !utf8.RuneStart(v[end]) {
			end--
		}
		v = v[:end]
	}
	if v != *s {
		f.n++
		*s = v
	}
}

func (f *fitter) f64(v *float64) {
	if math.IsNaN(*v) || math.IsInf(*v, 0) {
		f.n++
		*v = 0
	}
}

// cut returns a private copy of at most limit leading items, so fixing
// strings in place never writes into the caller's snapshot.
func cut[T any](f *fitter, s []T, limit int) []T {
	if len(s) > limit {
		f.n += len(s) - limit
		s = s[:limit]
	}
	return slices.Clone(s)
}

// recentFailures keeps the MaxFailuresPerSnapshot failures with the highest
// Seq, in their original order.
func recentFailures(f *fitter, in []snapshot.Failure) []snapshot.Failure {
	if len(in) <= MaxFailuresPerSnapshot {
		return slices.Clone(in)
	}
	seqs := make([]uint64, len(in))
	for i := range in {
		seqs[i] = in[i].Seq
	}
	slices.Sort(seqs)
	floor := seqs[len(seqs)-MaxFailuresPerSnapshot]
	out := make([]snapshot.Failure, 0, MaxFailuresPerSnapshot)
	// Ties at the floor are taken first-come until the bound is reached.
	above := 0
	for _, s := range seqs {
		if s > floor {
			above++
		}
	}
	atFloor := MaxFailuresPerSnapshot - above
	for _, fl := range in {
		switch {
		case fl.Seq > floor:
			out = append(out, fl)
		case fl.Seq == floor && atFloor > 0:
			atFloor--
			out = append(out, fl)
		}
	}
	f.n += len(in) - len(out)
	return out
}
