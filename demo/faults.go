package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/placement"
)

// Fault bounds: what `slow` may add to a link.
const (
	MaxFaultDelay = 5 * time.Second
	MaxFaultLoss  = 1.0
)

var _ api.FaultInjector = (*Demo)(nil)

// impairment is a slow fault on one link.
type impairment struct {
	delay time.Duration
	loss  float64
}

// Inject applies one fault for real: sockets close, drop or delay
// packets (demo/faultconn), daemons crash. The mesh then reacts on its own. A fault
// naming several nodes is checked for all of them before any is touched.
func (d *Demo) Inject(ctx context.Context, f api.Fault) error {
	if err := d.checkFault(f); err != nil {
		return err
	}
	members := make([]*member, 0, len(f.Nodes))
	for _, id := range f.Nodes {
		m, _ := d.memberByRef(id)
		members = append(members, m)
	}
	if err := d.checkAlive(f.Kind, members); err != nil {
		return err
	}
	switch f.Kind {
	case api.FaultKill:
		for _, m := range members {
			d.mu.Lock()
			nd, proc := m.node, m.proc
			m.node, m.faults, m.proc = nil, nil, nil
			d.mu.Unlock()
			if nd == nil && proc == nil {
				continue // killed by a concurrent request meanwhile
			}
			d.detector.injected(f, m.key.ID)
			if proc != nil {
				proc.kill() // SIGKILL: the OS closes its socket
				continue
			}
			if err := nd.Close(); err != nil {
				return fmt.Errorf("demo: kill %s: %w", m.label, err)
			}
		}
	case api.FaultRestart:
		for _, m := range members {
			if err := d.startMember(ctx, m); err != nil {
				return err
			}
		}
		// A restarted node has its own budget again.
		d.dropFaults(func(g api.Fault) bool {
			return (g.Kind == api.FaultKill || g.Kind == api.FaultFillDisk) && overlaps(g.Nodes, f.Nodes)
		})
		return nil
	case api.FaultPause, api.FaultResume:
		for _, m := range members {
			d.mu.Lock()
			alive := m.alive()
			d.mu.Unlock()
			if !alive {
				continue
			}
			if f.Kind == api.FaultPause {
				d.detector.injected(f, m.key.ID)
			}
			m.pause(f.Kind == api.FaultPause)
		}
		if f.Kind == api.FaultResume {
			d.dropFaults(func(g api.Fault) bool { return g.Kind == api.FaultPause && overlaps(g.Nodes, f.Nodes) })
			return nil
		}
	case api.FaultPartition:
		d.mu.Lock()
		for _, k := range d.cutPairs(f) {
			d.blocked[k] = true
		}
		d.mu.Unlock()
		for _, id := range f.Nodes {
			d.detector.injected(f, id)
		}
		d.applyLinks()
	case api.FaultHeal:
		d.mu.Lock()
		clear(d.blocked)
		clear(d.impaired)
		var running []*member
		for _, m := range d.members {
			if m.alive() {
				running = append(running, m)
			}
		}
		d.mu.Unlock()
		for _, m := range running {
			m.pause(false)
		}
		for _, id := range workloads.CrashLoops() {
			d.setCrashLoop(id, false)
		}
		for _, g := range d.Active() {
			if g.Kind == api.FaultFillDisk {
				for _, id := range g.Nodes {
					if m, err := d.memberByRef(id); err == nil {
						d.fillDisk(m, false)
					}
				}
			}
		}
		d.applyLinks()
		d.dropFaults(func(g api.Fault) bool { return g.Kind != api.FaultKill })
		return nil
	case api.FaultSlow:
		d.mu.Lock()
		for _, k := range d.linkPairs(f) {
			if k[1] != consoleIdx {
				d.impaired[k] = impairment{delay: f.Delay, loss: f.Loss}
			}
		}
		d.mu.Unlock()
		d.applyLinks()
	case api.FaultCrashLoop:
		d.setCrashLoop(f.Daemon, true)
	case api.FaultCorruptChunk:
		// One-shot: the node finds and repairs the rot itself; nothing
		// stays in force to heal.
		return d.corruptChunk(ctx, members[0])
	case api.FaultFillDisk:
		if !slices.Contains(members[0].caps, placement.CapabilityDatafort) {
			return fmt.Errorf("%w: %s keeps no datafort (capability %s)", api.ErrInvalid, members[0].label, placement.CapabilityDatafort)
		}
		d.fillDisk(members[0], true)
		d.dropFaults(func(g api.Fault) bool { return g.Kind == api.FaultFillDisk && overlaps(g.Nodes, f.Nodes) })
	}
	d.mu.Lock()
	d.faults = append(d.faults, f)
	d.mu.Unlock()
	return nil
}

// checkAlive refuses a kill, pause or resume of a killed node and a
// restart of a running one, before any node is touched.
func (d *Demo) checkAlive(kind api.FaultKind, members []*member) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range members {
		alive := m.alive()
		switch {
		case kind == api.FaultKill && !alive:
			return fmt.Errorf("%w: %s is already killed", api.ErrInvalid, m.label)
		case kind == api.FaultRestart && alive:
			return fmt.Errorf("%w: %s is running", api.ErrInvalid, m.label)
		case (kind == api.FaultPause || kind == api.FaultResume || kind == api.FaultCorruptChunk || kind == api.FaultFillDisk) && !alive:
			return fmt.Errorf("%w: %s is killed; restart it first", api.ErrInvalid, m.label)
		}
	}
	return nil
}

// linkPairs lists the links between f.Nodes and f.Peers (every other node
// when Peers is empty) as blocked/impaired keys; links inside f.Nodes are
// not included.
func (d *Demo) linkPairs(f api.Fault) [][2]int {
	var out [][2]int
	for _, a := range f.Nodes {
		ma, _ := d.memberByRef(a)
		for _, mb := range d.members {
			if mb == ma || slices.Contains(f.Nodes, mb.key.ID) {
				continue // nodes on the same side stay connected
			}
			if len(f.Peers) > 0 && !slices.Contains(f.Peers, mb.key.ID) {
				continue
			}
			out = append(out, [2]int{min(ma.idx, mb.idx), max(ma.idx, mb.idx)})
		}
	}
	return out
}

// cutPairs is linkPairs plus the console's links for a partition of the
// whole mesh: the console stays with the larger side (with the side not
// named on a tie), as an operator's laptop would stay with most of the
// mesh. A partition between named peers leaves the console connected.
func (d *Demo) cutPairs(f api.Fault) [][2]int {
	out := d.linkPairs(f)
	if len(f.Peers) > 0 {
		return out
	}
	named := make(map[int]bool, len(f.Nodes))
	for _, id := range f.Nodes {
		m, _ := d.memberByRef(id)
		named[m.idx] = true
	}
	withNamed := len(named) > len(d.members)-len(named)
	for _, m := range d.members {
		if named[m.idx] != withNamed {
			out = append(out, [2]int{m.idx, consoleIdx})
		}
	}
	return out
}

func (d *Demo) checkFault(f api.Fault) error {
	switch f.Kind {
	case api.FaultKill, api.FaultRestart, api.FaultPause, api.FaultResume, api.FaultPartition, api.FaultSlow:
		if len(f.Nodes) == 0 {
			return fmt.Errorf("%w: %s needs at least one node", api.ErrInvalid, f.Kind)
		}
	case api.FaultHeal:
	case api.FaultCorruptChunk, api.FaultFillDisk:
		if len(f.Nodes) != 1 {
			return fmt.Errorf("%w: %s takes one node", api.ErrInvalid, f.Kind)
		}
	case api.FaultCrashLoop:
		if f.Daemon == "" {
			return fmt.Errorf("%w: crashloop needs a daemon id", api.ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown fault %q", api.ErrInvalid, f.Kind)
	}
	for _, id := range append(slices.Clone(f.Nodes), f.Peers...) {
		if _, err := d.memberByRef(id); err != nil {
			return err
		}
	}
	if f.Delay < 0 || f.Delay > MaxFaultDelay {
		return fmt.Errorf("%w: delay %v out of 0..%v", api.ErrInvalid, f.Delay, MaxFaultDelay)
	}
	if !(f.Loss >= 0 && f.Loss <= MaxFaultLoss) {
		return fmt.Errorf("%w: loss %v out of 0..1", api.ErrInvalid, f.Loss)
	}
	if f.Kind == api.FaultSlow && f.Delay == 0 && f.Loss == 0 {
		return fmt.Errorf("%w: slow needs a delay or a loss", api.ErrInvalid)
	}
	return nil
}

// Active lists the faults in force.
func (d *Demo) Active() []api.Fault {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.faults)
}

func (d *Demo) dropFaults(match func(api.Fault) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.faults = slices.DeleteFunc(d.faults, match)
}

func overlaps(a, b []identity.NodeID) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// setCrashLoop makes daemon id crash on start wherever it runs: in this
// process, and in every node process (the daemon may be placed on any).
// The parent keeps the set too, so heal knows what to clear.
func (d *Demo) setCrashLoop(id string, on bool) {
	workloads.SetCrashLoop(id, on)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.members {
		if m.proc != nil {
			m.proc.send(memberCommand{Op: "crashloop", Daemon: id, On: on})
		}
	}
}
