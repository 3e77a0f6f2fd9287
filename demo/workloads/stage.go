package workloads

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Stage-control model: a show is a cue list (lighting, sound, fly, video)
// fired in order, each after its wait; cues fire late when the desk is
// saturated or throttled. Between shows the desk resets to preset.
const (
	stageMinCues        = 18
	stageMaxCues        = 30
	stageMinWaitSec     = 4.0
	stageMaxWaitSec     = 16.0
	stageIntervalSec    = 40.0 // between the last cue and the next show
	stageLateMs         = 120  // a GO later than this is reported
	stageDMXUniverses   = 4
	stageDMXRefreshHz   = 44
	stageLateDegraded   = 3 // late cues in the current show that degrade health
	stageMaxCueListLen  = 256
	stageDMXFaultPerHr  = 1.5
	stageMaxLabelLength = 64
)

type cue struct {
	Dept  string  `json:"dept"`
	Num   int     `json:"num"`
	Label string  `json:"label"`
	Wait  float64 `json:"wait"` // seconds after the previous GO
	Fade  float64 `json:"fade"`
}

var stageCueTemplates = []struct{ dept, label string }{
	{"LX", "house to half"}, {"LX", "house out"}, {"LX", "warm wash up"}, {"LX", "cold special DSR"},
	{"LX", "blackout"}, {"LX", "sunrise cyc build"}, {"LX", "strobe chase"}, {"LX", "follow spot pickup"},
	{"SQ", "preshow music out"}, {"SQ", "rain ambience in"}, {"SQ", "thunder crack"}, {"SQ", "radio static loop"},
	{"SQ", "underscore in"}, {"FLY", "scrim out"}, {"FLY", "bar 12 in to trim"}, {"FLY", "house curtain out"},
	{"VID", "projection: city"}, {"VID", "projection: static"}, {"VID", "surtitle page"}, {"FX", "haze 20%"},
}

type stageState struct {
	Cues      []cue   `json:"cues"`
	Next      int     `json:"next"`
	Show      uint64  `json:"show"`
	Fired     uint64  `json:"fired"`
	Late      uint64  `json:"late"`
	LateShow  int     `json:"late_show"`
	Elapsed   float64 `json:"elapsed"` // seconds since the previous GO
	DMXFrames uint64  `json:"dmx_frames"`
	DMXCarry  float64 `json:"dmx_carry"`
	Interval  bool    `json:"interval"`
	Standby   bool    `json:"standby"`
	LastDelay int     `json:"last_delay_ms"`
}

type stage struct{ s stageState }

func newStage(_ meshos.DaemonInfo, rng *rand.Rand) kernel {
	n := stageMinCues + rng.IntN(stageMaxCues-stageMinCues+1)
	cues := make([]cue, n)
	nums := map[string]int{}
	for i := range cues {
		t := pick(rng, stageCueTemplates)
		nums[t.dept]++
		cues[i] = cue{Dept: t.dept, Num: nums[t.dept], Label: t.label,
			Wait: stageMinWaitSec + rng.Float64()*(stageMaxWaitSec-stageMinWaitSec), Fade: float64(rng.IntN(11)) / 2}
	}
	return &stage{s: stageState{Cues: cues, Show: 1}}
}

func (k *stage) profile() satProfile {
	return satProfile{Base: 0.2, Amplitude: 0.1, Period: 5 * time.Minute, Noise: 0.03, BurstsPerHour: 6, BurstSize: 0.25}
}

func (k *stage) start(e *env) {
	e.logf(api.LevelInfo, "stage desk online: show %d, %d cues loaded, at cue %d of %d, %d DMX universes",
		k.s.Show, len(k.s.Cues), k.s.Next+1, len(k.s.Cues), stageDMXUniverses)
}

func (k *stage) tick(e *env) {
	// The show clock runs whatever the load: the audience does not wait.
	k.s.Elapsed += e.dt
	hz := stageDMXRefreshHz * (1 - 0.5*e.sat)
	k.s.DMXCarry += hz * e.dt
	k.s.DMXFrames += uint64(k.s.DMXCarry)
	k.s.DMXCarry -= float64(uint64(k.s.DMXCarry))
	switch {
	case e.draining:
		if e.chance(0.2) {
			e.logf(api.LevelDebug, "holding at cue %d (%s): safe state, house lights up", k.s.Next+1, k.s.Cues[k.s.Next].Label)
		}
		k.s.Elapsed = 0
	case k.s.Interval:
		if k.s.Elapsed >= stageIntervalSec {
			k.s.Interval, k.s.Elapsed, k.s.Next, k.s.LateShow = false, 0, 0, 0
			k.s.Show++
			e.logf(api.LevelInfo, "show %d: house open, preset loaded, standing by for cue 1", k.s.Show)
		}
	default:
		c := k.s.Cues[k.s.Next]
		if !k.s.Standby && k.s.Elapsed >= c.Wait-2*e.dt {
			k.s.Standby = true
			e.logf(api.LevelDebug, "standby %s %d: %s", c.Dept, c.Num, c.Label)
		}
		if k.s.Elapsed >= c.Wait {
			k.fire(e, c)
		}
	}
	if e.chance(0.3) {
		e.logf(api.LevelTrace, "dmx frame %d: universes 1-%d at %.0f Hz, %d channels changed",
			k.s.DMXFrames, stageDMXUniverses, hz, e.rng.IntN(180))
	}
	if e.chance(0.1) {
		e.logf(api.LevelDebug, "fader %d at %d%%, submaster %d at %d%%", 1+e.rng.IntN(24), e.rng.IntN(101), 1+e.rng.IntN(8), e.rng.IntN(101))
	}
	if e.perHour(stageDMXFaultPerHr) {
		e.logf(api.LevelError, "dmx universe %d: no ack from dimmer rack %c for %d ms, retransmitting",
			1+e.rng.IntN(stageDMXUniverses), 'A'+rune(e.rng.IntN(4)), 200+e.rng.IntN(800))
	}
}

func (k *stage) fire(e *env, c cue) {
	// Lateness grows with load and with backpressure, as the desk's event
	// loop falls behind.
	delay := int(e.rng.ExpFloat64()*30 + 600*max(0, e.sat-0.6) + 400*(1-e.throttle))
	k.s.LastDelay = delay
	k.s.Fired++
	k.s.Elapsed, k.s.Standby = 0, false
	if delay > stageLateMs {
		k.s.Late++
		k.s.LateShow++
		e.logf(api.LevelWarn, "GO %s %d fired %d ms late (dmx universe %d busy)", c.Dept, c.Num, delay, 1+e.rng.IntN(stageDMXUniverses))
	} else {
		e.logf(api.LevelInfo, "GO %s %d: %s (fade %.1fs)", c.Dept, c.Num, c.Label, c.Fade)
	}
	k.s.Next++
	if k.s.Next == len(k.s.Cues) {
		k.s.Next = len(k.s.Cues) - 1
		k.s.Interval = true
		e.logf(api.LevelInfo, "show %d complete: %d cues, %d late; resetting to preset", k.s.Show, len(k.s.Cues), k.s.LateShow)
	}
}

func (k *stage) health() (snapshot.DaemonHealthState, string) {
	if k.s.LateShow >= stageLateDegraded && !k.s.Interval {
		return snapshot.DaemonDegraded, fmt.Sprintf("cue timing slipping: %d late this show (last %d ms)", k.s.LateShow, k.s.LastDelay)
	}
	return snapshot.DaemonHealthy, ""
}

func (k *stage) overload(sat float64) string {
	return fmt.Sprintf("dmx refresh down to %d Hz", int(stageDMXRefreshHz*(1-0.5*sat)))
}

func (k *stage) drain(e *env, on bool, grace time.Duration) {
	if on {
		e.logf(api.LevelInfo, "drain (grace %s): holding at cue %d, desk to safe state", grace, k.s.Next+1)
		return
	}
	e.logf(api.LevelInfo, "drain over: resuming show %d at cue %d", k.s.Show, k.s.Next+1)
}

func (k *stage) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: OSC feedback and fixture polling paused, cues may run late", level)
		return
	}
	e.logf(api.LevelInfo, "backpressure off: OSC feedback and fixture polling resumed")
}

func (k *stage) shutdown(e *env, grace time.Duration) {
	e.logf(api.LevelInfo, "shutdown (grace %s): show %d at cue %d/%d, %d cues fired (%d late); DMX held at last look",
		grace, k.s.Show, k.s.Next+1, len(k.s.Cues), k.s.Fired, k.s.Late)
}

func (k *stage) fatal(e *env) string {
	return pick(e.rng, []string{
		"show file checksum mismatch after autosave reload",
		"OSC listener: bind :8000: address already in use",
		"sACN sender: network unreachable on universe 3",
	})
}

func (k *stage) state() any { return &k.s }

func (k *stage) restore(kind string, raw json.RawMessage) error {
	if kind != KindStage {
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	s, err := restoreAs(raw, func(s *stageState) error {
		if len(s.Cues) == 0 || len(s.Cues) > stageMaxCueListLen {
			return fmt.Errorf("cue list has %d cues, want 1..%d", len(s.Cues), stageMaxCueListLen)
		}
		if s.Next < 0 || s.Next >= len(s.Cues) {
			return fmt.Errorf("next cue %d outside the list", s.Next)
		}
		for _, c := range s.Cues {
			if len(c.Dept) > 8 || len(c.Label) > stageMaxLabelLength || !finite(c.Wait, c.Fade) || c.Wait < 0 || c.Fade < 0 || c.Wait > 3600 {
				return errors.New("cue out of range")
			}
		}
		if !finite(s.Elapsed, s.DMXCarry) || s.Elapsed < 0 || !in01(s.DMXCarry) || s.LateShow < 0 || s.LastDelay < 0 {
			return errors.New("show clock out of range")
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.s = *s
	return nil
}
