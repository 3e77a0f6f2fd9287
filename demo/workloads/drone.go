package workloads

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Drone controller model: a patrol route of waypoints around a home pad in
// local metres (shown as lat/lon), flown at cruise speed; the battery drains
// in flight, forces a return to base when low, and charges on the pad.
const (
	droneHomeLat          = 52.0116
	droneHomeLon          = 4.3571
	droneMetresPerDegLat  = 111_320.0
	droneCruiseMps        = 12.0
	droneArriveMetres     = 15.0
	droneDrainPctPerSec   = 0.08
	droneChargePctPerSec  = 0.5
	droneRTBPct           = 25.0
	droneLowPct           = 20.0
	droneResumePct        = 95.0
	droneMinWaypoints     = 6
	droneMaxWaypoints     = 9
	droneRouteRadiusM     = 1500.0
	droneGPSLossPerHour   = 2.0
	droneGPSHoldTicks     = 4
	droneLinkLossPerHour  = 1.5
	droneMaxRouteLen      = 32
	droneMaxCoordinateAbs = 20_000.0 // metres from home; a sane bound on restore
	droneMaxDistanceM     = 1e12     // odometer bound on restore, far below overflow
)

// Flight phases.
const (
	phaseEnroute  = "enroute"
	phaseRTB      = "rtb"
	phaseCharging = "charging"
	phaseHolding  = "holding"
)

type waypoint struct {
	Name string  `json:"name"`
	X    float64 `json:"x"` // metres east of home
	Y    float64 `json:"y"` // metres north of home
	Alt  float64 `json:"alt"`
}

type droneState struct {
	Route    []waypoint `json:"route"`
	Next     int        `json:"next"`
	X        float64    `json:"x"`
	Y        float64    `json:"y"`
	Alt      float64    `json:"alt"`
	Battery  float64    `json:"battery"` // percent
	Phase    string     `json:"phase"`
	Sorties  uint64     `json:"sorties"`
	Distance float64    `json:"distance"` // metres flown
	Hold     int        `json:"hold"`     // ticks left holding on GPS loss
}

type drone struct{ s droneState }

func newDrone(_ meshos.DaemonInfo, rng *rand.Rand) kernel {
	n := droneMinWaypoints + rng.IntN(droneMaxWaypoints-droneMinWaypoints+1)
	route := make([]waypoint, n)
	for i := range route {
		// Waypoints go round the pad so a sortie is a loop, not a zigzag.
		a := 2*math.Pi*float64(i)/float64(n) + rng.Float64()*0.5
		r := droneRouteRadiusM * (0.4 + 0.6*rng.Float64())
		route[i] = waypoint{Name: fmt.Sprintf("WP-%02d", i+1), X: r * math.Cos(a), Y: r * math.Sin(a), Alt: float64(60 + 20*rng.IntN(6))}
	}
	return &drone{s: droneState{Route: route, Battery: 100, Phase: phaseEnroute, Sorties: 1}}
}

func (k *drone) profile() satProfile {
	return satProfile{Base: 0.25, Amplitude: 0.08, Period: 3 * time.Minute, Noise: 0.03, BurstsPerHour: 4, BurstSize: 0.25}
}

func (k *drone) latLon() (float64, float64) {
	lat := droneHomeLat + k.s.Y/droneMetresPerDegLat
	lon := droneHomeLon + k.s.X/(droneMetresPerDegLat*math.Cos(droneHomeLat*math.Pi/180))
	return lat, lon
}

func (k *drone) start(e *env) {
	e.logf(api.LevelInfo, "drone link up: patrol route of %d waypoints, battery %.0f%%, phase %s", len(k.s.Route), k.s.Battery, k.s.Phase)
}

// flyTo moves towards (x, y, alt) for up to dist metres; true on arrival.
func (k *drone) flyTo(x, y, alt, dist float64) bool {
	dx, dy := x-k.s.X, y-k.s.Y
	d := math.Hypot(dx, dy)
	k.s.Alt += (alt - k.s.Alt) * math.Min(1, dist/100)
	if d <= math.Max(dist, droneArriveMetres) {
		k.s.Distance += d
		k.s.X, k.s.Y = x, y
		return true
	}
	k.s.X += dx / d * dist
	k.s.Y += dy / d * dist
	k.s.Distance += dist
	return false
}

func (k *drone) tick(e *env) {
	dist := droneCruiseMps * e.dt * e.throttle
	switch k.s.Phase {
	case phaseHolding:
		k.s.Battery = math.Max(0, k.s.Battery-droneDrainPctPerSec*e.dt)
		if k.s.Hold--; k.s.Hold <= 0 {
			k.s.Phase = phaseEnroute
			e.logf(api.LevelInfo, "gps fix regained (hdop %.1f), resuming route at %s", 0.8+0.6*e.rng.Float64(), k.s.Route[k.s.Next].Name)
		}
	case phaseCharging:
		k.s.Battery = math.Min(100, k.s.Battery+droneChargePctPerSec*e.dt)
		if k.s.Battery >= droneResumePct && !e.draining {
			k.s.Phase = phaseEnroute
			k.s.Sorties++
			e.logf(api.LevelInfo, "battery %.0f%%: sortie %d launching towards %s", k.s.Battery, k.s.Sorties, k.s.Route[k.s.Next].Name)
		} else if e.chance(0.15) {
			e.logf(api.LevelDebug, "charging on pad: %.1f%%, cell temp %.1f °C", k.s.Battery, 28+6*e.rng.Float64())
		}
	case phaseRTB:
		k.s.Battery = math.Max(0, k.s.Battery-droneDrainPctPerSec*e.dt)
		if k.flyTo(0, 0, 0, dist) {
			k.s.Phase = phaseCharging
			e.logf(api.LevelInfo, "landed on pad with %.0f%% battery, charging", k.s.Battery)
		}
	default:
		if e.draining {
			k.s.Phase = phaseRTB
			break
		}
		k.s.Battery = math.Max(0, k.s.Battery-droneDrainPctPerSec*e.dt*(1+0.2*e.rng.Float64()))
		wp := k.s.Route[k.s.Next]
		if k.flyTo(wp.X, wp.Y, wp.Alt, dist) {
			e.logf(api.LevelInfo, "waypoint %s reached (%d/%d), alt %.0f m, battery %.0f%%",
				wp.Name, k.s.Next+1, len(k.s.Route), k.s.Alt, k.s.Battery)
			k.s.Next = (k.s.Next + 1) % len(k.s.Route)
		}
		if k.s.Battery < droneRTBPct {
			k.s.Phase = phaseRTB
			e.logf(api.LevelWarn, "battery %.0f%%: returning to base (%.0f m out)", k.s.Battery, math.Hypot(k.s.X, k.s.Y))
		} else if e.perHour(droneGPSLossPerHour) {
			k.s.Phase, k.s.Hold = phaseHolding, droneGPSHoldTicks
			e.logf(api.LevelError, "gps fix lost (hdop %.1f, %d sats), holding position", 6+6*e.rng.Float64(), 2+e.rng.IntN(3))
		}
	}
	if k.s.Phase != phaseCharging && e.chance(0.35) {
		lat, lon := k.latLon()
		hdg := math.Mod(math.Atan2(k.s.Route[k.s.Next].X-k.s.X, k.s.Route[k.s.Next].Y-k.s.Y)*180/math.Pi+360, 360)
		e.logf(api.LevelTrace, "telemetry: pos %.5f,%.5f alt %.0f m hdg %03.0f° gs %.1f m/s bat %.1f%%",
			lat, lon, k.s.Alt, hdg, dist/math.Max(e.dt, 1e-3), k.s.Battery)
	}
	if e.chance(0.15) {
		e.logf(api.LevelDebug, "link quality %d%%, rssi %d dBm, snr %.1f dB", 70+e.rng.IntN(30), -60-e.rng.IntN(25), 12+10*e.rng.Float64())
	}
	if e.perHour(droneLinkLossPerHour) {
		e.logf(api.LevelError, "telemetry link lost for %d ms (rssi %d dBm), failsafe armed until resync", 300+e.rng.IntN(1500), -95-e.rng.IntN(10))
	}
	if e.chance(0.01) {
		e.logf(api.LevelWarn, "gust %.1f m/s from %03d°, crab angle %d°", 8+6*e.rng.Float64(), e.rng.IntN(360), 3+e.rng.IntN(9))
	}
}

func (k *drone) health() (snapshot.DaemonHealthState, string) {
	switch {
	case k.s.Phase == phaseHolding:
		return snapshot.DaemonDegraded, "gps fix lost: holding position"
	case k.s.Battery < droneLowPct && k.s.Phase != phaseCharging:
		return snapshot.DaemonDegraded, fmt.Sprintf("battery %.0f%%: returning to base", k.s.Battery)
	}
	return snapshot.DaemonHealthy, ""
}

func (k *drone) overload(sat float64) string {
	return fmt.Sprintf("telemetry loop late: %.0f ms behind", 400*(sat-0.8)/0.2+50)
}

func (k *drone) drain(e *env, on bool, grace time.Duration) {
	if on {
		e.logf(api.LevelInfo, "drain (grace %s): aborting sortie, returning to base from %.0f m out", grace, math.Hypot(k.s.X, k.s.Y))
		return
	}
	e.logf(api.LevelInfo, "drain over: patrol may resume at %s", k.s.Route[k.s.Next].Name)
}

func (k *drone) pressure(e *env, level float64) {
	if level > 0 {
		e.logf(api.LevelWarn, "backpressure %.2f: telemetry downlink %d → %d Hz, cruise speed cut to %.1f m/s",
			level, 10, max(1, int(10*(1-backpressureSlowdown*level))), droneCruiseMps*(1-backpressureSlowdown*level))
		return
	}
	e.logf(api.LevelInfo, "backpressure off: telemetry back to 10 Hz, cruise %.0f m/s", droneCruiseMps)
}

func (k *drone) shutdown(e *env, grace time.Duration) {
	e.logf(api.LevelInfo, "shutdown (grace %s): handing drone to autopilot failsafe (%s), %d sorties, %.1f km flown",
		grace, k.s.Phase, k.s.Sorties, k.s.Distance/1000)
}

func (k *drone) fatal(e *env) string {
	return pick(e.rng, []string{
		"flight controller heartbeat lost on /dev/ttyACM0",
		fmt.Sprintf("mavlink parser: checksum storm (%d bad frames/s)", 300+e.rng.IntN(400)),
		"radio modem reset: firmware watchdog fired",
	})
}

func (k *drone) state() any { return &k.s }

func (k *drone) restore(kind string, raw json.RawMessage) error {
	if kind != KindDrone {
		return fmt.Errorf("%w: %s", errWrongKind, kind)
	}
	s, err := restoreAs(raw, func(s *droneState) error {
		if len(s.Route) == 0 || len(s.Route) > droneMaxRouteLen {
			return fmt.Errorf("route has %d waypoints, want 1..%d", len(s.Route), droneMaxRouteLen)
		}
		if s.Next < 0 || s.Next >= len(s.Route) {
			return fmt.Errorf("next waypoint %d outside the route", s.Next)
		}
		for _, w := range s.Route {
			if len(w.Name) > 32 || !saneCoord(w.X, w.Y, w.Alt) {
				return errors.New("waypoint out of range")
			}
		}
		if !saneCoord(s.X, s.Y, s.Alt) || !finite(s.Battery, s.Distance) || s.Battery < 0 || s.Battery > 100 || s.Distance < 0 || s.Distance > droneMaxDistanceM {
			return errors.New("position or battery out of range")
		}
		switch s.Phase {
		case phaseEnroute, phaseRTB, phaseCharging, phaseHolding:
		default:
			return fmt.Errorf("unknown phase %q", s.Phase)
		}
		if s.Hold < 0 || s.Hold > droneGPSHoldTicks {
			return errors.New("hold out of range")
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.s = *s
	return nil
}

func saneCoord(x, y, alt float64) bool {
	return finite(x, y, alt) && math.Abs(x) <= droneMaxCoordinateAbs && math.Abs(y) <= droneMaxCoordinateAbs && alt >= 0 && alt <= 1000
}
