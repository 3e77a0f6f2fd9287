package gossip

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/identity"
)

// certifiedIn is a Members check that certifies key i of r for subnets[i].
func certifiedIn(r *rig, subnets map[identity.NodeID]string) func(identity.NodeID, ed25519.PublicKey, []byte, time.Time) (Membership, error) {
	return func(id identity.NodeID, _ ed25519.PublicKey, _ []byte, _ time.Time) (Membership, error) {
		return Membership{Role: identity.RoleNode, Subnet: subnets[id]}, nil
	}
}

// TestAttackSnapshotClaimsSubnetItsCertificateDoesNotCarry: a member
// certified for "eu/ams" signs a snapshot saying it is in "eu/fra" (to be
// folded there, escape its own rules, or poison that subnet's summary):
// the receiver in "eu/fra" refuses it whatever the snapshot says, and
// neither stores nor forwards it; the same member's honest snapshot is not
// even verified there (another subnet's), and is held in its own.
func TestAttackSnapshotClaimsSubnetItsCertificateDoesNotCarry(t *testing.T) {
	subnets := map[identity.NodeID]string{}
	var r *rig
	r = newRig(t, 4, func(c *Config) { c.Subnet = "eu/fra" })
	liar := r.keys[1]
	subnets[r.keys[0].ID], subnets[liar.ID], subnets[r.keys[2].ID] = "eu/fra", "eu/ams", "eu/fra"
	r.g.cfg.Members = certifiedIn(r, subnets)

	claim := nodeSnapshot(liar.ID, 1, 2, testNow)
	claim.Subnet = "eu/fra"
	r.deliver(1, r.envFor(t, liar, claim))
	if s := r.g.Stats(); s.SubnetClaims != 0 || s.OutOfScope != 1 {
		// Certified for eu/ams: out of this node's scope before its
		// signature is even checked.
		t.Fatalf("stats %+v, want the envelope dropped out of scope", s)
	}
	if r.latest(liar.ID) != nil || len(r.drain()) != 0 {
		t.Fatal("a snapshot of another subnet was stored or forwarded")
	}

	// The same lie told to a node of its own subnet: the signature holds,
	// the claim does not.
	r2 := newRig(t, 4, func(c *Config) { c.Subnet = "eu/ams" })
	subnets2 := map[identity.NodeID]string{r2.keys[1].ID: "eu/ams"}
	r2.g.cfg.Members = certifiedIn(r2, subnets2)
	lie := nodeSnapshot(r2.keys[1].ID, 1, 2, testNow)
	lie.Subnet = "eu/fra"
	r2.deliver(1, r2.envFor(t, r2.keys[1], lie))
	if s := r2.g.Stats(); s.SubnetClaims != 1 || s.Rejected != 1 || s.Accepted != 0 {
		t.Fatalf("stats %+v, want the claim rejected", s)
	}
	if r2.latest(r2.keys[1].ID) != nil || len(r2.drain()) != 0 {
		t.Fatal("a snapshot claiming a subnet its certificate does not carry was stored or forwarded")
	}
	// Control: told truthfully, it is held.
	honest := nodeSnapshot(r2.keys[1].ID, 2, 2, testNow)
	honest.Subnet = "eu/ams"
	raw, err := Seal(r2.keys[1], honest, 3, 1, testNow)
	if err != nil {
		t.Fatal(err)
	}
	r2.deliver(1, appendEnvelopeMsg(nil, 0, raw))
	if v := r2.latest(r2.keys[1].ID); v == nil || v.Subnet != "eu/ams" {
		t.Fatalf("honest snapshot refused: %s", r2.g.Stats().LastReject)
	}
}

// TestPublishRefusesAnotherSubnet: a node publishes only its own subnet.
func TestPublishRefusesAnotherSubnet(t *testing.T) {
	r := newRig(t, 2, func(c *Config) { c.Subnet = "eu" })
	own := nodeSnapshot(r.keys[0].ID, 1, 1, testNow)
	own.Subnet = "us"
	if err := r.g.Publish(own); !errors.Is(err, ErrSubnetClaim) {
		t.Fatalf("Publish = %v, want ErrSubnetClaim", err)
	}
	own.Subnet = "eu"
	if err := r.g.Publish(own); err != nil {
		t.Fatal(err)
	}
}

// TestFocusHoldsAnotherSubnetWithoutForwarding: a console focusing
// "us" holds a us member's snapshot but never pushes it on; once the
// focus ends, it is forgotten.
func TestFocusHoldsAnotherSubnetWithoutForwarding(t *testing.T) {
	r := newRig(t, 3, func(c *Config) { c.Subnet = "eu" })
	r.g.cfg.Members = certifiedIn(r, map[identity.NodeID]string{r.keys[1].ID: "us", r.keys[2].ID: "eu"})
	ns := nodeSnapshot(r.keys[1].ID, 1, 1, testNow)
	ns.Subnet = "us"
	msg := r.envFor(t, r.keys[1], ns)
	r.deliver(1, msg)
	if r.latest(r.keys[1].ID) != nil {
		t.Fatal("held another subnet's snapshot without a focus")
	}
	r.g.SetFocus("us", []identity.NodeID{r.keys[1].ID})
	ns.Generation = 2
	r.deliver(1, r.envFor(t, r.keys[1], ns))
	if r.latest(r.keys[1].ID) == nil {
		t.Fatalf("focused snapshot refused: %+v", r.g.Stats())
	}
	if out := r.drain(); len(out) != 0 {
		t.Fatalf("a focused snapshot was pushed on: %d messages", len(out))
	}
	r.g.SetFocus("", nil)
	if r.latest(r.keys[1].ID) != nil {
		t.Fatal("the focused subnet's snapshot outlived the focus")
	}
}
