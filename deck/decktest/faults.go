package decktest

import (
	"context"
	"sync"

	"github.com/deck-mesh/deck/node/api"
)

// Faults is a fixture api.FaultInjector: it records what was injected and
// reports it as active (heal clears everything), so the DEMO panel can be
// exercised without a harness.
type Faults struct {
	mu     sync.Mutex
	active []api.Fault
	log    []api.Fault
}

func (f *Faults) Inject(ctx context.Context, x api.Fault) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, x)
	if x.Kind == api.FaultHeal {
		f.active = nil
		return nil
	}
	f.active = append(f.active, x)
	return nil
}

func (f *Faults) Active() []api.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Fault(nil), f.active...)
}

// Injected is every fault injected so far, in order.
func (f *Faults) Injected() []api.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Fault(nil), f.log...)
}
