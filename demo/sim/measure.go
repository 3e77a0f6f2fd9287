package sim

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/deck-mesh/deck/demo"
	"github.com/deck-mesh/deck/node"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Polling cadences. Times measured by polling are late by up to one poll.
const (
	// changePoll is how often the harness reads the views of the nodes it
	// times a change or a detection on (a subnet's members, the console).
	changePoll = 10 * time.Millisecond
	// formPoll is how often WaitFormed reads every node's view.
	formPoll = 250 * time.Millisecond
)

// find is id's view in cs, nil when cs has none.
func find(cs *snapshot.ClusterSnapshot, id identity.NodeID) *snapshot.NodeView {
	for i := range cs.Nodes {
		if cs.Nodes[i].ID == id {
			return &cs.Nodes[i]
		}
	}
	return nil
}

// subnetView is path's view in cs, nil when cs has none.
func subnetView(cs *snapshot.ClusterSnapshot, path string) *snapshot.SubnetView {
	for i := range cs.Subnets {
		if cs.Subnets[i].Path == path {
			return &cs.Subnets[i]
		}
	}
	return nil
}

// WaitFormed waits until every live member sees every other live member of
// its subnet Healthy with a snapshot, and the console sees every live
// member (in detail, or through a fresh summary of its subnet once
// subnets are scoped). It returns how long that took from Ready.
func (s *Sim) WaitFormed(ctx context.Context) (time.Duration, error) {
	t := time.NewTicker(formPoll)
	defer t.Stop()
	for {
		if s.formed() {
			return time.Since(s.Ready), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("sim: the mesh did not form: %w (%s)", ctx.Err(), s.unformed())
		case <-t.C:
		}
	}
}

func (s *Sim) formed() bool { return s.unformed() == "" }

// unformed says what keeps the mesh from being formed, "" when it is.
func (s *Sim) unformed() string {
	live := s.Live()
	bySubnet := map[int][]*Member{}
	for _, m := range live {
		bySubnet[m.Subnet] = append(bySubnet[m.Subnet], m)
	}
	var absent, unhealthy, noSnapshot, pairs int
	for _, m := range live {
		cs := m.Node.Cluster()
		for _, p := range bySubnet[m.Subnet] {
			if p == m {
				continue
			}
			pairs++
			switch nv := find(cs, p.Node.ID()); {
			case nv == nil:
				absent++
			case nv.Health != snapshot.Healthy:
				unhealthy++
			case nv.BuiltAt.IsZero():
				noSnapshot++
			}
		}
	}
	if absent+unhealthy+noSnapshot > 0 {
		return fmt.Sprintf("of %d subnet-peer views, %d absent, %d not Healthy, %d without a snapshot", pairs, absent, unhealthy, noSnapshot)
	}
	cs := s.Console.Cluster()
	unseen := 0
	for _, m := range live {
		if nv := find(cs, m.Node.ID()); nv != nil && nv.Health == snapshot.Healthy && !nv.BuiltAt.IsZero() {
			continue
		}
		if sv := subnetView(cs, m.Path); sv != nil && !sv.Stale && !sv.Detailed {
			continue
		}
		unseen++
	}
	if unseen > 0 {
		return fmt.Sprintf("the console does not see %d nodes", unseen)
	}
	return ""
}

// Traffic is what the nodes sent and received over a window, per node.
type Traffic struct {
	Window time.Duration
	Nodes  int // live members measured (the console excluded)
	// Means over the nodes, per second of the window.
	PacketsOutPerNode, PacketsInPerNode float64
	BytesOutPerNode, BytesInPerNode     float64
	// MaxPacketsOut is the busiest node's packets out per second.
	MaxPacketsOut float64
	// CPUPerNode is process CPU time (user+system) per node per second of
	// the window: 0.01 is 1% of one core.
	CPUPerNode float64
	// HeapPerNode is live Go heap after a GC over the members and console;
	// ResidentPerNode the process's resident set over the same.
	HeapPerNode, ResidentPerNode uint64
	Goroutines                   int
	// What went wrong over the window, summed over the members: packets
	// the transports dropped, handshakes they refused for rate, and what
	// the network dropped (a full inbox: a node too slow to read).
	TransportDrops, HandshakesRateLimited uint64
	NetQueueDrops                         uint64
	// Handshake defences at work (summed): cookie replies sent under load
	// and half-open responders evicted; and the heartbeats sent, per node
	// per second (the liveness traffic).
	CookieReplies, RespondersEvicted uint64
	HeartbeatsOutPerNode             float64
	// InboxDrops are the datagrams memnet dropped on members' full
	// inboxes over the window, SeedInboxDrops those at the subnets' seeds
	// (their gateways, every member's bootstrap): where the network
	// overflows.
	InboxDrops, SeedInboxDrops uint64
	// NetDelivered is the share of datagrams the network delivered of
	// those written to it over the window.
	NetDelivered float64
}

// MeasureTraffic reads every live member's transport counters and the
// process's CPU over window. The console's node is left out of the
// per-node figures (it is one observer, not a member).
func (s *Sim) MeasureTraffic(ctx context.Context, window time.Duration) (Traffic, error) {
	live := s.Live()
	before := make([]node.Stats, len(live))
	inbox := make([]uint64, len(live))
	for i, m := range live {
		before[i] = m.Node.Stats()
		if m.conn != nil {
			inbox[i] = m.conn.InboxDrops()
		}
	}
	net0 := s.Net.Stats()
	cpu0, t0 := processCPU(), time.Now()
	select {
	case <-ctx.Done():
		return Traffic{}, ctx.Err()
	case <-time.After(window):
	}
	cpu1, secs := processCPU(), time.Since(t0).Seconds()
	tr := Traffic{Window: time.Since(t0), Nodes: len(live)}
	for i, m := range live {
		if m.Killed() {
			continue
		}
		a, b := before[i].Transport, m.Node.Stats().Transport
		out := float64(b.PacketsOut-a.PacketsOut) / secs
		tr.PacketsOutPerNode += out
		tr.PacketsInPerNode += float64(b.PacketsIn-a.PacketsIn) / secs
		tr.BytesOutPerNode += float64(b.BytesOut-a.BytesOut) / secs
		tr.BytesInPerNode += float64(b.BytesIn-a.BytesIn) / secs
		tr.MaxPacketsOut = max(tr.MaxPacketsOut, out)
		tr.TransportDrops += b.Drops - a.Drops
		tr.HandshakesRateLimited += b.HandshakesRateLimited - a.HandshakesRateLimited
		tr.CookieReplies += b.CookieRepliesSent - a.CookieRepliesSent
		tr.RespondersEvicted += b.RespondersEvicted - a.RespondersEvicted
		tr.HeartbeatsOutPerNode += float64(b.HeartbeatsOut-a.HeartbeatsOut) / secs
		if m.conn != nil {
			d := m.conn.InboxDrops() - inbox[i]
			tr.InboxDrops += d
			if m.Index < s.opts.Subnets {
				tr.SeedInboxDrops += d
			}
		}
	}
	net1 := s.Net.Stats()
	tr.NetQueueDrops = net1.QueueDrops - net0.QueueDrops
	if sent := net1.Sent - net0.Sent; sent > 0 {
		tr.NetDelivered = float64(net1.Delivered-net0.Delivered) / float64(sent)
	}
	n := float64(len(live))
	tr.PacketsOutPerNode /= n
	tr.PacketsInPerNode /= n
	tr.BytesOutPerNode /= n
	tr.BytesInPerNode /= n
	tr.HeartbeatsOutPerNode /= n
	tr.CPUPerNode = (cpu1 - cpu0).Seconds() / secs / n
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tr.HeapPerNode = ms.HeapAlloc / uint64(len(live)+1)
	tr.ResidentPerNode = demo.ResidentBytes() / uint64(len(live)+1)
	tr.Goroutines = runtime.NumGoroutine()
	return tr, nil
}

// Spread is how long one event took to reach a set of observers: a change
// reaching its subnet, a kill being detected.
type Spread struct {
	Observers int           // nodes that were watched
	Reached   int           // of them, how many saw it before the deadline
	P50, P99  time.Duration // over those that did (the 99th at the nearest rank)
	Max       time.Duration
}

// spreadOf summarises the times observers took (negative: never).
func spreadOf(times []time.Duration) Spread {
	sp := Spread{Observers: len(times)}
	var got []time.Duration
	for _, d := range times {
		if d >= 0 {
			got = append(got, d)
		}
	}
	sp.Reached = len(got)
	if len(got) == 0 {
		return sp
	}
	slices.Sort(got)
	sp.P50, sp.P99, sp.Max = percentile(got, 0.50), percentile(got, 0.99), got[len(got)-1]
	return sp
}

// percentile of sorted samples at the nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Convergence is how fast a change in one node's own snapshot (an
// operator cordons it) spread.
type Convergence struct {
	Node   string // its label
	Subnet string
	// Committed is how long the cordon took from the operator's call to
	// the node's own snapshot saying so (its ledger commit and fold).
	Committed time.Duration
	// OwnSeen is false when the node's own snapshot did not show the
	// cordon within DetectDeadline (nothing else is measured then).
	OwnSeen bool
	// Subnet is the spread to the node's subnet peers: the snapshot
	// generation carrying the change in their view. Console is when the
	// console saw it: the node's view at that generation, or (subnets
	// scoped) a summary of its subnet built after the subnet's aggregator
	// had the change. Zero Console with ConsoleSeen false: not in time.
	InSubnet    Spread
	Console     time.Duration
	ConsoleSeen bool
}

// MeasureConvergence cordons m through a client on m itself, then times
// the new snapshot's spread from the moment m's own snapshot carries it,
// each wait bounded by DetectDeadline.
func (s *Sim) MeasureConvergence(ctx context.Context, m *Member) (Convergence, error) {
	cv := Convergence{Node: fmt.Sprintf("sim-%04d", m.Index), Subnet: m.Path}
	cl, err := m.Node.NewClient(identity.KeySigner{K: s.Operator}, "alice")
	if err != nil {
		return cv, err
	}
	asked := time.Now()
	if _, err := cl.Admin().Cordon(ctx, m.Node.ID()); err != nil {
		return cv, fmt.Errorf("sim: cordon %s: %w", cv.Node, err)
	}
	var gen uint64
	var changedAt time.Time
	cctx, cancel := context.WithTimeout(ctx, DetectDeadline)
	defer cancel()
	if err := pollUntil(cctx, func(now time.Time) bool {
		own := m.Node.Stats().Own
		if own != nil && own.Cordoned {
			gen, changedAt = own.Generation, now
			return true
		}
		return false
	}); err != nil {
		if ctx.Err() != nil {
			return cv, ctx.Err()
		}
		return cv, nil // an overloaded mesh: OwnSeen false says so
	}
	cv.Committed, cv.OwnSeen = changedAt.Sub(asked), true
	peers := slices.DeleteFunc(s.InSubnet(m.Subnet), func(p *Member) bool { return p == m })
	has := func(cs *snapshot.ClusterSnapshot) bool {
		nv := find(cs, m.Node.ID())
		return nv != nil && nv.Generation >= gen
	}
	times := make([]time.Duration, len(peers))
	for i := range times {
		times[i] = -1
	}
	// The aggregator of m's subnet had the change when: kept per member id
	// so the console's summary rule can use it.
	sawAt := map[identity.NodeID]time.Time{m.Node.ID(): changedAt}
	wctx, cancel := context.WithTimeout(ctx, DetectDeadline)
	defer cancel()
	_ = pollUntil(wctx, func(now time.Time) bool {
		done := true
		for i, p := range peers {
			if times[i] >= 0 || p.Killed() {
				continue
			}
			if has(p.Node.Cluster()) {
				times[i] = now.Sub(changedAt)
				sawAt[p.Node.ID()] = now
			} else {
				done = false
			}
		}
		if !cv.ConsoleSeen {
			cs := s.Console.Cluster()
			if has(cs) || s.summaryCarries(cs, m.Path, sawAt) {
				cv.Console, cv.ConsoleSeen = now.Sub(changedAt), true
			} else {
				done = false
			}
		}
		return done
	})
	cv.InSubnet = spreadOf(times)
	return cv, nil
}

// summaryCarries reports whether cs holds a summary of subnet path built
// after its aggregator (the summary's signer) had the change.
func (s *Sim) summaryCarries(cs *snapshot.ClusterSnapshot, path string, sawAt map[identity.NodeID]time.Time) bool {
	sv := subnetView(cs, path)
	if sv == nil || sv.Detailed {
		return false
	}
	at, ok := sawAt[sv.Aggregator]
	return ok && !sv.BuiltAt.Before(at)
}

// Detection is how fast the victim's subnet peers noticed a kill.
type Detection struct {
	Node   string
	Subnet string
	// Suspect and Unreachable spread over the victim's live subnet peers:
	// from the kill until each saw the victim Suspect (or worse), and
	// Unreachable.
	Suspect, Unreachable Spread
	// NotHealthyBefore counts observer-victim pairs left out because the
	// observer did not see the victim Healthy when it was killed.
	NotHealthyBefore int
}

// MeasureKill kills victims at once and times their detection by their
// subnet's live peers (within deadline). Observers are the victims' subnet
// peers that were not killed; a victim's spread counts each of them.
func (s *Sim) MeasureKill(ctx context.Context, victims []*Member, deadline time.Duration) (Detection, error) {
	if len(victims) == 0 {
		return Detection{}, fmt.Errorf("sim: no victims")
	}
	det := Detection{Node: fmt.Sprintf("sim-%04d", victims[0].Index), Subnet: victims[0].Path}
	if len(victims) > 1 {
		det.Node, det.Subnet = fmt.Sprintf("%d nodes", len(victims)), "theirs"
	}
	type watch struct {
		obs, victim          *Member
		suspect, unreachable time.Duration
	}
	// Observers that do not see the victim Healthy before the kill (an
	// overloaded mesh) cannot time its detection: they are counted apart.
	var ws []*watch
	victim := map[*Member]bool{}
	for _, v := range victims {
		victim[v] = true
	}
	for _, v := range victims {
		for _, p := range s.InSubnet(v.Subnet) {
			if victim[p] {
				continue
			}
			if nv := find(p.Node.Cluster(), v.Node.ID()); nv == nil || nv.Health != snapshot.Healthy {
				det.NotHealthyBefore++
				continue
			}
			ws = append(ws, &watch{obs: p, victim: v, suspect: -1, unreachable: -1})
		}
	}
	for _, v := range victims {
		v.kill()
	}
	killed := time.Now()
	wctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	_ = pollUntil(wctx, func(now time.Time) bool {
		done := true
		views := map[*Member]*snapshot.ClusterSnapshot{}
		for _, w := range ws {
			if w.unreachable >= 0 || w.obs.Killed() {
				continue
			}
			cs := views[w.obs]
			if cs == nil {
				cs = w.obs.Node.Cluster()
				views[w.obs] = cs
			}
			nv := find(cs, w.victim.Node.ID())
			if nv == nil {
				done = false
				continue
			}
			if nv.Health != snapshot.Healthy && w.suspect < 0 {
				w.suspect = now.Sub(killed)
			}
			if nv.Health == snapshot.Unreachable {
				w.unreachable = now.Sub(killed)
			} else {
				done = false
			}
		}
		return done
	})
	sus := make([]time.Duration, len(ws))
	unr := make([]time.Duration, len(ws))
	for i, w := range ws {
		sus[i], unr[i] = w.suspect, w.unreachable
	}
	det.Suspect, det.Unreachable = spreadOf(sus), spreadOf(unr)
	return det, nil
}

// Partition is a subnet cut off from the rest, then healed.
type Partition struct {
	Subnet string
	Nodes  int
	// Cut is how long until the console saw every member of the subnet
	// other than Healthy (or its summary stale); Healed how long after the
	// heal until it saw them all Healthy again (or a fresh summary).
	Cut, Healed         time.Duration
	CutSeen, HealedSeen bool
}

// PartitionSubnet cuts every link between subnet k and the rest of the
// mesh (the console included), waits for the console to notice, heals and
// waits for it to see the subnet again, each within deadline.
func (s *Sim) PartitionSubnet(ctx context.Context, k int, deadline time.Duration) (Partition, error) {
	in := s.InSubnet(k)
	pt := Partition{Subnet: SubnetPath(k), Nodes: len(in)}
	if s.opts.UDP {
		return pt, fmt.Errorf("%w: a partition needs the in-process network, not UDP", api.ErrInvalid)
	}
	inside := map[*Member]bool{}
	for _, m := range in {
		inside[m] = true
	}
	out := []netip.AddrPort{netip.MustParseAddrPort(s.Console.Addr())}
	for _, m := range s.Members {
		if m.Node != nil && !inside[m] {
			out = append(out, m.Addr)
		}
	}
	cut := func(on bool) {
		for _, m := range in {
			for _, o := range out {
				s.Net.Partition(m.Addr, o, on)
			}
		}
	}
	allAre := func(healthy bool) bool {
		cs := s.Console.Cluster()
		if sv := subnetView(cs, pt.Subnet); sv != nil && !sv.Detailed {
			return sv.Stale != healthy
		}
		for _, m := range in {
			nv := find(cs, m.Node.ID())
			if nv == nil || (nv.Health == snapshot.Healthy) != healthy {
				return false
			}
		}
		return true
	}
	cut(true)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, deadline)
	if pollUntil(wctx, func(time.Time) bool { return allAre(false) }) == nil {
		pt.Cut, pt.CutSeen = time.Since(start), true
	}
	cancel()
	cut(false)
	start = time.Now()
	wctx, cancel = context.WithTimeout(ctx, deadline)
	if pollUntil(wctx, func(time.Time) bool { return allAre(true) }) == nil {
		pt.Healed, pt.HealedSeen = time.Since(start), true
	}
	cancel()
	return pt, ctx.Err()
}

// pollUntil calls cond every changePoll until it is true (nil) or ctx ends.
func pollUntil(ctx context.Context, cond func(now time.Time) bool) error {
	t := time.NewTicker(changePoll)
	defer t.Stop()
	for {
		if cond(time.Now()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
