package workloads

import (
	"math"
	"math/rand/v2"
	"time"
)

// satProfile shapes one kind's load: a daily-cycle-like sinusoid (compressed
// to minutes so a demo shows it), a mean-reverting random walk, and bursts
// that arrive at random and decay.
type satProfile struct {
	Base      float64
	Amplitude float64
	Period    time.Duration
	// Noise is the random walk's stationary standard deviation.
	Noise         float64
	BurstsPerHour float64
	BurstSize     float64
}

// Time constants of the saturation model.
const (
	// walkTauSeconds is how fast the random walk reverts to zero.
	walkTauSeconds = 30.0
	// burstTauSeconds is how fast a load burst decays.
	burstTauSeconds = 45.0
	// smoothTauSeconds low-pass filters the published saturation, so a
	// control event or a burst moves it over seconds, not in one jump.
	smoothTauSeconds = 4.0
)

type satModel struct {
	p      satProfile
	phase  float64
	t      float64
	walk   float64
	burst  float64
	demand float64 // offered load before drain and backpressure, 0..1
	smooth float64 // published saturation, 0..1
}

func newSatModel(p satProfile, rng *rand.Rand) satModel {
	// A random phase keeps replicas of one group from moving in lockstep.
	return satModel{p: p, phase: rng.Float64() * 2 * math.Pi}
}

// advance moves the model on by dt seconds and returns the saturation with
// the offered load scaled by factor (drain, backpressure).
func (m *satModel) advance(dt float64, rng *rand.Rand, factor float64) float64 {
	if dt <= 0 {
		return m.smooth
	}
	m.t += dt
	theta := math.Min(dt/walkTauSeconds, 1)
	// Ornstein–Uhlenbeck step whose stationary deviation is p.Noise.
	m.walk += -m.walk*theta + m.p.Noise*math.Sqrt(2*theta)*rng.NormFloat64()
	if m.p.BurstsPerHour > 0 && rng.Float64() < 1-math.Exp(-m.p.BurstsPerHour*dt/3600) {
		m.burst += m.p.BurstSize * (0.6 + 0.4*rng.Float64())
	}
	m.burst *= math.Exp(-dt / burstTauSeconds)
	period := m.p.Period.Seconds()
	raw := m.p.Base + m.walk + m.burst
	if period > 0 {
		raw += m.p.Amplitude * math.Sin(2*math.Pi*m.t/period+m.phase)
	}
	m.demand = clamp01(raw)
	target := clamp01(raw * factor)
	m.smooth += (target - m.smooth) * (1 - math.Exp(-dt/smoothTauSeconds))
	m.smooth = clamp01(m.smooth)
	return m.smooth
}

func clamp01(x float64) float64 {
	switch {
	case math.IsNaN(x) || x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}
