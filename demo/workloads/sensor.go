package workloads

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Sensor array model: eight channels sampled at sensorFrameHz, each a
// baseline with slow drift and Gaussian noise; anomalies arrive as a Poisson
// process and read several sigmas off baseline.
const (
	sensorFrameHz         = 50.0
	sensorAnomaliesPerHr  = 12.0
	sensorAnomalyTicks    = 8 // ticks an anomaly keeps the array degraded
	sensorAnomalyMinSigma = 4.0
	sensorFaultsPerHour   = 1.5
	sensorSummaryTicks    = 12
	sensorDriftPerRootSec = 0.02 // random-walk drift, in channel sigmas per √s
	sensorMaxDriftSigmas  = 3.0
)

type sensorChannel struct {
	Name     string
	Unit     string
	Baseline float64
	Sigma    float64
	Bus      int
}

var sensorChannels = []sensorChannel{
	{"temp-intake", "°C", 22.5, 0.4, 1},
	{"temp-exhaust", "°C", 38.0, 0.9, 1},
	{"vibration", "mm/s", 1.2, 0.25, 2},
	{"rf-noise", "dBm", -97, 1.8, 3},
	{"humidity", "%RH", 41, 1.5, 1},
	{"particulate", "µg/m³", 8, 2.2, 2},
	{"pressure", "hPa", 1012, 0.6, 1},
	{"mag-field", "µT", 48.5, 0.7, 3},
}

type sensorState struct {
	Frames      uint64    `json:"frames"`
	Anomalies   uint64    `json:"anomalies"`
	ReadErrors  uint64    `json:"read_errors"`
	Drift       []float64 `json:"drift"` // per channel, in sigmas
	LastChannel int       `json:"last_channel"`
	LastZ       float64   `json:"last_z"`
	Carry       float64   `json:"carry"`
}

type sensor struct {
	s       sensorState
	anomaly int // ticks left degraded
}

func newSensor(_ meshos.DaemonInfo, _ *rand.Rand) kernel {
	return &sensor{s: sensorState{Drift: make([]float64, len(sensorChannels)), LastChannel: -1}}
}

func (k *sensor) profile() satProfile {
	return satProfile{Base: 0.3, Amplitude: 0.1, Period: 4 * time.Minute, Noise: 0.04, BurstsPerHour: 5, BurstSize: 0.3}
}

func (k *sensor) start(e *env) {
	e.logf(api.LevelInfo, "sensor array online: %d channels on 3 i2c buses at %.0f Hz, anomaly threshold %.0fσ",
		len(sensorChannels), sensorFrameHz, sensorAnomalyMinSigma)
}

func (k *sensor) read(i int, r *rand.Rand) float64 {
	c := sensorChannels[i]
	return c.Baseline + (k.s.Drift[i]+r.NormFloat64())*c.Sigma
}

func (k *sensor) tick(e *env) {
	if k.anomaly > 0 {
		k.anomaly--
	}
	rate := sensorFrameHz * e.throttle
	if e.draining {
		rate = 0
	}
	k.s.Carry += rate * e.dt
	n := uint64(k.s.Carry)
	k.s.Carry -= float64(n)
	k.s.Frames += n
	for i := range k.s.Drift {
		k.s.Drift[i] += sensorDriftPerRootSec * math.Sqrt(e.dt) * e.rng.NormFloat64()
		k.s.Drift[i] = math.Max(-sensorMaxDriftSigmas, math.Min(sensorMaxDriftSigmas, k.s.Drift[i]))
	}
	if n == 0 {
		return
	}
	if e.perHour(sensorAnomaliesPerHr) {
		i := e.rng.IntN(len(sensorChannels))
		c := sensorChannels[i]
		z := (sensorAnomalyMinSigma + 4*e.rng.Float64()) * float64(1-2*e.rng.IntN(2))
		k.s.Anomalies++
		k.s.LastChannel, k.s.LastZ = i, z
		k.anomaly = sensorAnomalyTicks
		e.logf(api.LevelWarn, "anomaly ch%d %s: %.1f %s (z=%+.1f, baseline %.1f) at frame %d",
			i, c.Name, c.Baseline+(k.s.Drift[i]+z)*c.Sigma, c.Unit, z, c.Baseline, k.s.Frames)
	}
	if e.chance(0.35) {
		e.logf(api.LevelTrace, "frame %d: %d ch, crc ok, %d µs acquire", k.s.Frames, len(sensorChannels), 180+e.rng.IntN(120))
	}
	if e.chance(0.15) {
		i := e.rng.IntN(len(sensorChannels))
		c := sensorChannels[i]
		e.logf(api.LevelDebug, "calibration: ch%d %s drift %+.3f %s", i, c.Name, k.s.Drift[i]*c.Sigma, c.Unit)
	}
	if e.every(sensorSummaryTicks) {
		var b strings.Builder
		for _, i := range []int{0, 2, 3, 5} {
			c := sensorChannels[i]
			fmt.Fprintf(&b, "%s %.1f %s, ", c.Name, k.read(i, e.rng), c.Unit)
		}
		e.logf(api.LevelInfo, "readings: %s%d frames, %d anomalies, %d read errors", b.String(), k.s.Frames, k.s.Anomalies, k.s.ReadErrors)
	}
	if e.perHour(sensorFaultsPerHour) {
		i := e.rng.IntN(len(sensorChannels))
		k.s.ReadErrors++
		e.logf(api.LevelError, "ch%d %s read timeout (i2c bus %d NAK), holding last value", i, sensorChannels[i].Name, sensorChannels[i].Bus)
	}
}

func (k *sensor) health() (snapshot.DaemonHealthState, string) {
	if k.anomaly > 0 && k.s.LastChannel >= 0 {
		return snapshot.DaemonDegraded, fmt.Sprintf("anomaly on ch%d %s (z=%+.1f)", k.s.LastChannel, sensorChannels[k.s.LastChannel].Name, k.s.LastZ)
	}
	return snapshot.DaemonHealthy, ""
}

func (k *sensor) overload(sat float64) string {
	return fmt.Sprintf("acquisition falling behind: %.0f%% of frames late", 100*(sat-0.8)/0.2)
}

func (k *sensor) drain(e *env, on bool, grace time.Duration) {
	if on {
		e.logf(api.LevelInfo, "drain (grace %s): flushing %d buffered frames to datafort, pausing acquisition", grace, 64+e.rng.IntN(192))
		return
	}
	e.logf(api.LevelInfo, "drain over: acquisition resumed at %.0f Hz", sensorFrameHz)
}

func (k *sensor) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: decimating to %.0f Hz", level, sensorFrameHz*(1-backpressureSlowdown*level))
		return
	}
	e.logf(api.LevelInfo, "backpressure off: full rate %.0f Hz", sensorFrameHz)
}

func (k *sensor) shutdown(e *env, grace time.Duration) {
	e.logf(api.LevelInfo, "shutdown (grace %s): %d frames, %d anomalies; buses released", grace, k.s.Frames, k.s.Anomalies)
}

func (k *sensor) fatal(e *env) string {
	return pick(e.rng, []string{
		"i2c bus 1 wedged: SDA held low after 9 clock pulses",
		"ADC FIFO overrun: 4096 samples lost",
		"sensor board brown-out (3.3V rail at 2.71V)",
	})
}

func (k *sensor) state() any { return &k.s }

func (k *sensor) restore(kind string, raw json.RawMessage) error {
	if kind != KindSensor {
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	s, err := restoreAs(raw, func(s *sensorState) error {
		if len(s.Drift) != len(sensorChannels) {
			return fmt.Errorf("%d drift values, want %d", len(s.Drift), len(sensorChannels))
		}
		for _, d := range s.Drift {
			if !finite(d) || math.Abs(d) > sensorMaxDriftSigmas {
				return errors.New("drift out of range")
			}
		}
		if s.LastChannel < -1 || s.LastChannel >= len(sensorChannels) || !finite(s.LastZ, s.Carry) || !in01(s.Carry) {
			return errors.New("anomaly record or carry out of range")
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.s = *s
	return nil
}
