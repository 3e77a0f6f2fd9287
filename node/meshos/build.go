package meshos

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deck-mesh/deck/node/snapshot"
)

// publish builds the node snapshot, stores it behind the atomic pointer and
// signals Changes when its structure changed (Generation then grows).
func (rt *Runtime) publish(now time.Time) {
	res := rt.sampleResources()
	rt.mu.Lock()
	s := rt.buildLocked(now, res)
	h := structuralHash(s, rt.settledSaturationLocked)
	rt.forgetGoneSaturationsLocked(s)
	changed := h != rt.lastHash || rt.gen == 0
	if changed {
		rt.gen++
		rt.lastHash = h
	}
	s.Generation = rt.gen
	rt.mu.Unlock()
	rt.latest.Store(s)
	if changed {
		select {
		case rt.changes <- struct{}{}:
		default:
		}
	}
}

// settledSaturationLocked is the saturation the structural hash uses for
// key (a daemon id, "" for the node): the value last hashed unless v has
// since moved by a whole SaturationHashStep. Quantising alone made a value
// jittering across a step's boundary (0.474, 0.476, 0.474 …) a change each
// time, and every change is a snapshot signed and pushed to the fan-out:
// the idle demo's daemons did that several times a second. The exact
// values still ride on every publish and re-announce.
func (rt *Runtime) settledSaturationLocked(key string, v float64) float64 {
	if rt.hashedSat == nil {
		rt.hashedSat = map[string]float64{}
	}
	last, ok := rt.hashedSat[key]
	if !ok || math.Abs(v-last) >= SaturationHashStep {
		rt.hashedSat[key] = v
		return v
	}
	return last
}

// forgetGoneSaturationsLocked drops the remembered saturations of daemons
// no longer in s.
func (rt *Runtime) forgetGoneSaturationsLocked(s *snapshot.NodeSnapshot) {
	if len(rt.hashedSat) <= len(s.Daemons)+1 {
		return
	}
	for k := range rt.hashedSat {
		if k != "" && !slices.ContainsFunc(s.Daemons, func(d snapshot.Daemon) bool { return d.ID == k }) {
			delete(rt.hashedSat, k)
		}
	}
}

// sampleResources runs the configured sampler, or reads /proc.
func (rt *Runtime) sampleResources() snapshot.Resources {
	if rt.cfg.Resources != nil {
		return rt.cfg.Resources()
	}
	return hostResources.sample(rt.now())
}

// hostResources caches the host's /proc gauges for hostSampleEvery: every
// node in a process reads the same host, and each tick re-reading two /proc
// files per node was a visible share of an idle demo's CPU.
var hostResources hostSampler

// hostSampleEvery is how long one reading of /proc serves.
const hostSampleEvery = time.Second

type hostSampler struct {
	mu   sync.Mutex
	at   time.Time
	last snapshot.Resources
}

func (h *hostSampler) sample(now time.Time) snapshot.Resources {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && now.Sub(h.at) < hostSampleEvery && now.After(h.at) {
		return h.last
	}
	h.at, h.last = now, readProcResources()
	return h.last
}

// readProcResources reads CPU load and memory use from /proc (zero where
// unavailable); Saturation is left for the caller.
func readProcResources() snapshot.Resources {
	var r snapshot.Resources
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				r.CPULoad = clamp01(v / float64(runtime.NumCPU()))
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var total, avail float64
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "MemTotal:":
				total = v
			case "MemAvailable:":
				avail = v
			}
		}
		if total > 0 {
			r.MemUsed = clamp01((total - avail) / total)
		}
	}
	r.Saturation = -1 // filled from the daemons' declared load under rt.mu
	return r
}

func clamp01(v float64) float64 {
	if v != v || v < 0 {
		return 0
	}
	return math.Min(v, 1)
}

// daemonViewLocked is s as the snapshot shows it. A daemon stopped for the
// replay phase of an outbound migration is still this node's until the
// target confirms cutover, so it shows as Migrating rather than vanishing:
// otherwise a node that reads the gap as "runs nowhere" (the target after
// an abort, any node after a lost message) starts a fresh copy while a
// rollback is about to restart this one.
func (rt *Runtime) daemonViewLocked(id string, s *supervisor, now time.Time) snapshot.Daemon {
	d := s.view(rt.self, now)
	if d.Lifecycle == snapshot.LifecycleStopped && rt.outboundFor(id) != nil {
		d.Lifecycle = snapshot.LifecycleMigrating
	}
	return d
}

// buildLocked assembles the NodeSnapshot from the runtime state. rt.mu held.
func (rt *Runtime) buildLocked(now time.Time, res snapshot.Resources) *snapshot.NodeSnapshot {
	s := &snapshot.NodeSnapshot{
		ID: rt.self, Label: rt.cfg.Label, Addr: rt.cfg.Addr, Version: rt.cfg.Version,
		BuiltAt: now, StartedAt: rt.startedAt,
		Capabilities: slices.Clone(rt.cfg.Capabilities),
		Maintenance:  rt.maint,
		Counters:     rt.counters,
		Peers:        slices.Clone(rt.peers),
		Datafort:     rt.datafort,
		Blobs:        slices.Clone(rt.blobs),
	}
	if ni, ok := rt.intent.Nodes[rt.self]; ok {
		s.Cordoned = ni.Cordoned
	}
	ids := make([]string, 0, len(rt.daemons))
	for id := range rt.daemons {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var declared float64
	for _, id := range ids {
		d := rt.daemonViewLocked(id, rt.daemons[id], now)
		if d.Lifecycle == snapshot.LifecycleStopped {
			continue
		}
		declared += rt.kinds[d.Lineage.Group].Load
		s.Daemons = append(s.Daemons, d)
	}
	if res.Saturation < 0 {
		res.Saturation = clamp01(declared)
	}
	rt.trend = append(rt.trend, res.Saturation)
	if len(rt.trend) > TrendSamplesMax {
		rt.trend = slices.Delete(rt.trend, 0, len(rt.trend)-TrendSamplesMax)
	}
	res.Trend = slices.Clone(rt.trend)
	s.Resources = res
	chains := make([]string, 0, len(rt.replicas))
	for c := range rt.replicas {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	for _, c := range chains {
		r := rt.replicas[c]
		s.Replicas = append(s.Replicas, snapshot.Replica{Chain: c, Role: r.role, Seq: r.seq, Term: r.term})
	}
	for _, e := range rt.avoid {
		s.Avoid = append(s.Avoid, e)
	}
	slices.SortFunc(s.Avoid, func(a, b snapshot.AvoidEntry) int { return cmp.Compare(a.Peer, b.Peer) })
	for _, p := range rt.pending {
		s.Pending = append(s.Pending, *p)
	}
	slices.SortFunc(s.Pending, func(a, b snapshot.PendingAction) int { return strings.Compare(a.ID, b.ID) })
	if n := len(rt.failures); n > FailuresInSnapshotMax {
		s.Failures = slices.Clone(rt.failures[n-FailuresInSnapshotMax:])
	} else {
		s.Failures = slices.Clone(rt.failures)
	}
	for _, m := range rt.migOut {
		s.Migrations = append(s.Migrations, m.view())
	}
	for _, m := range rt.migIn {
		s.Migrations = append(s.Migrations, m.view())
	}
	for _, f := range rt.finished {
		s.Migrations = append(s.Migrations, f.m)
	}
	slices.SortFunc(s.Migrations, func(a, b snapshot.Migration) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// StructuralHash hashes what a NodeSnapshot says about the node's structure:
// what runs, where, in what state, who holds what, what is pending or
// failing. Ages, remaining times, BuiltAt, counters, the saturation trend
// and sub-step jitter (saturation within SaturationHashStep, RTT within a
// power of two of RTTHashFloor) do not count, so gossip publishes on real change only.
func StructuralHash(s *snapshot.NodeSnapshot) uint64 {
	return structuralHash(s, func(_ string, v float64) float64 { return v })
}

// structuralHash is StructuralHash with each saturation (the node's under
// key "", each daemon's under its id) read through saturation.
func structuralHash(s *snapshot.NodeSnapshot, saturation func(key string, v float64) float64) uint64 {
	h := hasher{v: 14695981039346656037}
	h.u64(uint64(s.ID))
	h.str(s.Label)
	h.str(s.Addr)
	h.str(s.Version)
	h.i64(s.StartedAt.UnixNano())
	h.u64(uint64(len(s.Capabilities)))
	for _, c := range s.Capabilities {
		h.str(c)
	}
	h.u64(quantize(saturation("", s.Resources.Saturation)))
	m := s.Maintenance
	h.u64(uint64(m.State))
	h.i64(m.Since.UnixNano())
	h.i64(m.Deadline.UnixNano())
	h.str(m.Reason)
	h.u64(uint64(m.DaemonsLeft)<<32 | uint64(m.DaemonsTotal))
	h.u64(uint64(m.ReplicasLeft)<<32 | uint64(m.ReplicasTotal))
	h.bool(s.Cordoned)
	h.u64(uint64(len(s.Daemons)))
	for _, d := range s.Daemons {
		h.str(d.ID)
		h.str(d.Kind)
		h.lineage(d.Lineage)
		h.u64(uint64(d.Lifecycle))
		h.u64(uint64(d.Health))
		h.str(d.HealthReason)
		h.u64(quantize(saturation(d.ID, d.Saturation)))
		h.u64(uint64(d.Restart))
		h.u64(uint64(d.Restarts))
		h.i64(d.StartedAt.UnixNano())
	}
	h.u64(uint64(len(s.Replicas)))
	for _, r := range s.Replicas {
		h.str(r.Chain)
		h.u64(uint64(r.Role))
		h.u64(r.Seq / ChainSeqHashStep)
		h.u64(r.Term)
	}
	h.u64(uint64(len(s.Avoid)))
	for _, a := range s.Avoid {
		h.u64(uint64(a.Peer))
		h.str(a.Reason)
	}
	h.u64(uint64(len(s.Pending)))
	for _, p := range s.Pending {
		h.str(p.ID)
		h.str(p.Kind)
		h.str(p.Target)
		h.str(p.Blocked)
	}
	h.u64(uint64(len(s.Failures)))
	for _, f := range s.Failures {
		h.u64(f.Seq)
	}
	h.u64(uint64(len(s.Migrations)))
	for _, g := range s.Migrations {
		h.str(g.ID)
		h.u64(uint64(g.Phase))
		h.u64(quantize(g.Progress))
		h.u64(uint64(g.Retries))
		h.str(g.Error)
	}
	h.u64(uint64(len(s.Peers)))
	for _, p := range s.Peers {
		h.u64(uint64(p.Peer))
		h.u64(uint64(p.Health))
		h.bool(p.Direct)
		h.u64(uint64(bits.Len64(uint64(max(p.RTT/RTTHashFloor, 0)))))
	}
	// The datafort: what placement and the operator act on. Used moves in
	// whole percents of the budget, heat by doublings; the rates ride on
	// re-announcements.
	d := &s.Datafort
	h.bool(d.Enabled)
	if d.Capacity > 0 {
		h.u64(d.Used * 100 / d.Capacity)
	}
	h.u64(d.Blobs)
	h.u64(uint64(d.Overflow))
	h.u64(uint64(d.Incoming))
	h.u64(uint64(d.DrainLeft))
	h.u64(d.Errors)
	h.u64(uint64(len(s.Blobs)))
	for _, b := range s.Blobs {
		h.write(b.Hash[:])
		h.u64(uint64(b.Role))
		h.bool(b.Pinned)
		h.u64(uint64(b.Replicas))
		h.u64(uint64(bits.Len64(uint64(math.Max(0, b.Heat*10)))))
	}
	return h.v
}

func quantize(v float64) uint64 {
	return uint64(math.Round(clamp01(v) / SaturationHashStep))
}

// hasher is FNV-1a over a canonical, length-prefixed encoding.
type hasher struct{ v uint64 }

func (h *hasher) write(b []byte) {
	for _, c := range b {
		h.v ^= uint64(c)
		h.v *= 1099511628211
	}
}

func (h *hasher) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	h.write(b[:])
}

func (h *hasher) i64(v int64) { h.u64(uint64(v)) }

func (h *hasher) bool(v bool) {
	if v {
		h.u64(1)
	} else {
		h.u64(0)
	}
}

func (h *hasher) str(s string) {
	h.u64(uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h.v ^= uint64(s[i])
		h.v *= 1099511628211
	}
}

func (h *hasher) lineage(l snapshot.Lineage) {
	h.u64(uint64(l.Kind))
	h.str(l.Group)
	h.u64(uint64(l.Index))
	h.bool(l.Active)
	h.u64(l.ForkAt)
	h.u64(l.ForkSentinel)
	h.u64(l.Synced / ChainSeqHashStep)
	h.u64(l.Term)
}
