package serve

import (
	"context"
	"errors"
	"testing"

	"github.com/deck-mesh/deck/deck/decktest"
	"github.com/deck-mesh/deck/node/api"
)

// TestConsolePassesSubnetFocus: a session's Console forwards the subnet
// focus and aggregator queries to the node's Client, and says so plainly
// when that Client has no subnets.
func TestConsolePassesSubnetFocus(t *testing.T) {
	ctx := context.Background()
	fx := decktest.New(0)
	c := &Console{Client: fx}
	if err := c.FocusSubnet(ctx, "eu/fra"); err != nil || fx.Focus() != "eu/fra" {
		t.Fatalf("focus: %v, fixture focus %q", err, fx.Focus())
	}
	if sum, err := c.QuerySubnet(ctx, "eu/fra"); err != nil || sum.Path != "eu/fra" {
		t.Fatalf("query: %+v %v", sum, err)
	}
	plain := &Console{Client: struct{ api.Client }{fx}}
	if err := plain.FocusSubnet(ctx, "eu/fra"); !errors.Is(err, ErrNoSubnets) {
		t.Fatalf("plain client focus: %v", err)
	}
	if _, err := plain.QuerySubnet(ctx, "eu/fra"); !errors.Is(err, ErrNoSubnets) {
		t.Fatalf("plain client query: %v", err)
	}
}
