package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/demo/workloads"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// Fault bounds: what `slow` may add to a link.
const (
	MaxFaultDelay = 5 * time.Second
	MaxFaultLoss  = 1.0
)

var _ api.FaultInjector = (*Demo)(nil)

// Inject applies one fault for real: sockets close, transports drop or
// delay packets, daemons crash. The mesh then reacts on its own.
func (d *Demo) Inject(ctx context.Context, f api.Fault) error {
	if err := d.checkFault(f); err != nil {
		return err
	}
	switch f.Kind {
	case api.FaultKill:
		for _, id := range f.Nodes {
			m, _ := d.memberByRef(id)
			d.mu.Lock()
			nd := m.node
			m.node = nil
			d.mu.Unlock()
			if nd == nil {
				return fmt.Errorf("%w: %s is already killed", api.ErrInvalid, m.label)
			}
			d.detector.injected(f, id)
			if err := nd.Close(); err != nil {
				return fmt.Errorf("demo: kill %s: %w", m.label, err)
			}
		}
	case api.FaultRestart:
		for _, id := range f.Nodes {
			m, _ := d.memberByRef(id)
			d.mu.Lock()
			alive := m.node != nil
			d.mu.Unlock()
			if alive {
				return fmt.Errorf("%w: %s is running", api.ErrInvalid, m.label)
			}
			if err := d.startMember(ctx, m); err != nil {
				return err
			}
		}
		d.dropFaults(func(g api.Fault) bool { return g.Kind == api.FaultKill && overlaps(g.Nodes, f.Nodes) })
		return nil
	case api.FaultPause, api.FaultResume:
		for _, id := range f.Nodes {
			m, _ := d.memberByRef(id)
			d.mu.Lock()
			nd := m.node
			d.mu.Unlock()
			if nd == nil {
				return fmt.Errorf("%w: %s is killed; restart it first", api.ErrInvalid, m.label)
			}
			if f.Kind == api.FaultPause {
				d.detector.injected(f, id)
			}
			nd.Transport().Pause(f.Kind == api.FaultPause)
		}
		if f.Kind == api.FaultResume {
			d.dropFaults(func(g api.Fault) bool { return g.Kind == api.FaultPause && overlaps(g.Nodes, f.Nodes) })
			return nil
		}
	case api.FaultPartition:
		d.mu.Lock()
		for _, a := range f.Nodes {
			ma, _ := d.memberByRef(a)
			for _, mb := range d.members {
				if mb == ma || (len(f.Peers) > 0 && !slices.Contains(f.Peers, mb.key.ID)) {
					continue
				}
				if slices.Contains(f.Nodes, mb.key.ID) {
					continue // nodes on the same side stay connected
				}
				d.blocked[[2]int{min(ma.idx, mb.idx), max(ma.idx, mb.idx)}] = true
			}
			if len(f.Peers) == 0 {
				d.blocked[[2]int{ma.idx, -1}] = true // the console sits with the majority
			}
		}
		d.mu.Unlock()
		for _, id := range f.Nodes {
			d.detector.injected(f, id)
		}
		d.applyLinks()
	case api.FaultHeal:
		d.mu.Lock()
		clear(d.blocked)
		members := slices.Clone(d.members)
		d.mu.Unlock()
		for _, m := range members {
			if m.node == nil {
				continue
			}
			m.node.Transport().Pause(false)
			for _, o := range members {
				if o != m {
					m.node.Transport().Impair(o.key.ID, 0, 0)
				}
			}
		}
		for _, id := range workloads.CrashLoops() {
			workloads.SetCrashLoop(id, false)
		}
		d.applyLinks()
		d.dropFaults(func(g api.Fault) bool { return g.Kind != api.FaultKill })
		return nil
	case api.FaultSlow:
		for _, a := range f.Nodes {
			ma, _ := d.memberByRef(a)
			for _, mb := range d.members {
				if mb == ma || (len(f.Peers) > 0 && !slices.Contains(f.Peers, mb.key.ID)) {
					continue
				}
				if ma.node != nil {
					ma.node.Transport().Impair(mb.key.ID, f.Delay, f.Loss)
				}
				if mb.node != nil {
					mb.node.Transport().Impair(ma.key.ID, f.Delay, f.Loss)
				}
			}
		}
	case api.FaultCrashLoop:
		workloads.SetCrashLoop(f.Daemon, true)
	}
	d.mu.Lock()
	d.faults = append(d.faults, f)
	d.mu.Unlock()
	return nil
}

func (d *Demo) checkFault(f api.Fault) error {
	switch f.Kind {
	case api.FaultKill, api.FaultRestart, api.FaultPause, api.FaultResume, api.FaultPartition, api.FaultSlow:
		if len(f.Nodes) == 0 {
			return fmt.Errorf("%w: %s needs at least one node", api.ErrInvalid, f.Kind)
		}
	case api.FaultHeal:
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
