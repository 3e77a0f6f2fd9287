package transport

import (
	"time"

	"github.com/deck-mesh/deck/node/snapshot"
)

// detector is one peer's failure detector: Healthy -> Suspect after
// suspectAfter of silence (missed heartbeats) -> Unreachable after
// unreachableAfter -> Healthy again on the next valid heartbeat. Each time
// a Healthy peer stops being Healthy counts as a flap.
type detector struct {
	state     snapshot.Health
	since     time.Time
	lastHeard time.Time
	flaps     int
}

func newDetector(now time.Time) detector {
	// A peer we only heard of (an announcement) is Unreachable until it
	// speaks to us itself.
	return detector{state: snapshot.Unreachable, since: now}
}

// heard records a valid heartbeat; it reports whether the state changed.
func (d *detector) heard(now time.Time) bool {
	d.lastHeard = now
	if d.state == snapshot.Healthy {
		return false
	}
	d.state, d.since = snapshot.Healthy, now
	return true
}

// tick advances the detector by the passage of time.
func (d *detector) tick(now time.Time, suspectAfter, unreachableAfter time.Duration) bool {
	if d.lastHeard.IsZero() {
		return false
	}
	silence := now.Sub(d.lastHeard)
	next := d.state
	switch {
	case silence >= unreachableAfter:
		next = snapshot.Unreachable
	case silence >= suspectAfter && d.state == snapshot.Healthy:
		next = snapshot.Suspect
	}
	if next == d.state {
		return false
	}
	if d.state == snapshot.Healthy {
		d.flaps++
	}
	d.state, d.since = next, now
	return true
}

// rttEstimator is RFC 6298's smoothed RTT and variance.
type rttEstimator struct {
	srtt, rttvar time.Duration
	samples      int
}

func (e *rttEstimator) sample(r time.Duration) {
	if r <= 0 {
		return
	}
	if e.samples == 0 {
		e.srtt, e.rttvar = r, r/2
	} else {
		diff := e.srtt - r
		if diff < 0 {
			diff = -diff
		}
		e.rttvar = (3*e.rttvar + diff) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.samples++
}
