package node

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/gossip"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/messaging"
	"github.com/deck-mesh/deck/node/snapshot"
	"github.com/deck-mesh/deck/node/transport"
	"github.com/deck-mesh/deck/node/trust"
)

// Subnets (issue 16; ARCHITECTURE.md "Subnets, gateways, aggregators"). A
// node's subnet is its certificate's. Its cluster view, its snapshot
// gossip and the sessions it makes on its own stay inside that subnet;
// what crosses is routes, the ledger, signed summaries and whatever the
// cluster file's visibility rules let through, enforced by every node
// that relays or receives a packet (gateways are where that happens).

// CapabilityGateway marks a node that links its subnet with the gateways
// of the subnets around it (parent, children, siblings): it keeps
// sessions with them, so routes, summaries and permitted traffic cross
// there. It grants nothing: the rules bind every node alike.
const CapabilityGateway = "gateway"

// resolveSubnet decides the node's subnet: Options.Subnet, else the
// cluster file's [subnets.nodes] entry, else the certificate's own. A
// certificate that carries another is refused in ownCertificate.
func (n *Node) resolveSubnet() error {
	s := cmp.Or(n.opts.Subnet, n.opts.Cluster.SubnetOf(n.key.ID))
	if s == "" && n.opts.Certificate != nil {
		s = n.opts.Certificate.Subnet
	}
	if err := identity.ValidateSubnet(s); err != nil {
		return fmt.Errorf("node: %w: %w", api.ErrInvalid, err)
	}
	rules, err := n.opts.Cluster.SubnetRules()
	if err != nil {
		return fmt.Errorf("node: %w: %w", api.ErrInvalid, err)
	}
	n.subnet = s
	n.scope = &scope{self: n.key.ID, subnet: s, rules: rules, known: n.trust.Known,
		gateway: slices.Contains(n.opts.Capabilities, CapabilityGateway) && !n.opts.Observer}
	empty := map[identity.NodeID]string{}
	n.scope.dir.Store(&empty)
	noRoster := map[identity.NodeID]string{}
	n.scope.roster.Store(&noRoster)
	noPeers := map[identity.NodeID]bool{}
	n.scope.gatewayPeers.Store(&noPeers)
	focus := ""
	n.scope.focus.Store(&focus)
	// Without subnets the transport keeps its whole-mesh behaviour and
	// pays nothing per packet.
	n.scoped = s != "" || n.opts.Cluster.HasSubnets()
	return nil
}

// Subnet is the node's subnet path ("" the root).
func (n *Node) Subnet() string { return n.subnet }

// IsGateway reports whether the node has the gateway capability.
func (n *Node) IsGateway() bool { return n.scope.gateway }

// scope is the node's transport.Scope: its directory of who is in which
// subnet (refreshed from the membership registry by the loop), the
// visibility rules, and the per-channel gateway counters.
type scope struct {
	self    identity.NodeID
	subnet  string
	gateway bool
	rules   map[string]snapshot.Visibility
	known   func(identity.NodeID, time.Time) (transport.Admission, bool)

	dir    atomic.Pointer[map[identity.NodeID]string]
	roster atomic.Pointer[map[identity.NodeID]string] // from fresh summaries

	gatewayPeers atomic.Pointer[map[identity.NodeID]bool]
	focus        atomic.Pointer[string]

	// Indexed like snapshot.GatewayChannels (the codec's bound is the
	// array's).
	forwarded, dropped [gossip.MaxGatewayChannelsPerSnapshot]atomic.Uint64

	builtAt time.Time // the directory's last rebuild (loop goroutine only)
}

// scopeRebuildInterval bounds how often the directory is rebuilt.
const scopeRebuildInterval = time.Second

var gatewayChannelCount = len(snapshot.GatewayChannels)

// channelIndex is the index of name in snapshot.GatewayChannels.
func channelIndex(name string) int { return slices.Index(snapshot.GatewayChannels, name) }

// gatewayChannel is the rule that governs a messaging channel: the
// stricter of the two gateway channels that share one (logs and failures
// ride the subscription channel), the
// ledger for admin pushes and anti-entropy; false for what always
// crosses (the transport's control, summaries).
func (s *scope) gatewayChannel(ch messaging.Channel) (string, bool) {
	pick := func(a, b string) (string, bool) {
		if s.rules[b] < s.rules[a] {
			return b, true
		}
		return a, true
	}
	switch ch {
	case messaging.ChanGossip:
		return snapshot.ChannelSnapshots, true
	case messaging.ChanLedger, messaging.ChanCommand:
		return snapshot.ChannelLedger, true
	case messaging.ChanSubscribe:
		return pick(snapshot.ChannelLogs, snapshot.ChannelFailures)
	case messaging.ChanMigration:
		return snapshot.ChannelChains, true
	case messaging.ChanBlob:
		return snapshot.ChannelBlobs, true
	case messaging.ChanQuery:
		return snapshot.ChannelQueries, true
	}
	return "", false
}

// permits reports whether vis lets traffic go from subnet from to to:
// global anywhere; parent between a subnet and its parent, either way
// (a request and its answer cross the same boundary); local nowhere
// else.
func permits(vis snapshot.Visibility, from, to string) bool {
	switch {
	case from == to || vis == snapshot.VisGlobal:
		return true
	case vis == snapshot.VisParent:
		return snapshot.Parent(from) == to || snapshot.Parent(to) == from
	}
	return false
}

// subnetOf is id's subnet from the directory, else the registry.
func (s *scope) subnetOf(id identity.NodeID) (string, bool) {
	if id == s.self {
		return s.subnet, true
	}
	if sub, ok := (*s.dir.Load())[id]; ok {
		return sub, true
	}
	if adm, ok := s.known(id, time.Now()); ok {
		return adm.Subnet, true
	}
	return "", false
}

// Wanted implements transport.Scope.
func (s *scope) Wanted(id identity.NodeID) bool {
	if sub, ok := (*s.dir.Load())[id]; ok && (sub == s.subnet || sub == *s.focus.Load()) {
		return true
	}
	return (*s.gatewayPeers.Load())[id]
}

// Allow implements transport.Scope. A packet whose ends this node cannot
// place is let through: its source's first relay and its destination
// both hold the source's certificate and judge it.
func (s *scope) Allow(ch messaging.Channel, src, dst identity.NodeID) bool {
	name, ruled := s.gatewayChannel(ch)
	if !ruled {
		return true
	}
	from, ok1 := s.subnetOf(src)
	to, ok2 := s.subnetOf(dst)
	if !ok1 || !ok2 || from == to {
		return true
	}
	i := channelIndex(name)
	if !permits(s.rules[name], from, to) {
		s.dropped[i].Add(1)
		return false
	}
	s.forwarded[i].Add(1)
	return true
}

// adjacent reports whether subnet other borders this node's: its parent,
// a child, or a sibling (same parent).
func (s *scope) adjacent(other string) bool {
	return other != s.subnet && (snapshot.Parent(other) == snapshot.Parent(s.subnet) ||
		snapshot.Parent(other) == s.subnet || other == snapshot.Parent(s.subnet))
}

// gatewayView is the node's NodeSnapshot.Gateway: every channel's rule,
// where it reaches from the node's live direct links, and the counters;
// nil for a node that is no gateway and never judged a crossing.
func (s *scope) gatewayView(peers []messaging.PeerInfo) []snapshot.GatewayChannel {
	busy := s.gateway
	for i := range gatewayChannelCount {
		busy = busy || s.forwarded[i].Load() > 0 || s.dropped[i].Load() > 0
	}
	if !busy {
		return nil
	}
	out := make([]snapshot.GatewayChannel, 0, gatewayChannelCount)
	for i, name := range snapshot.GatewayChannels {
		gc := snapshot.GatewayChannel{Channel: name, Visibility: s.rules[name],
			Forwarded: s.forwarded[i].Load(), Dropped: s.dropped[i].Load()}
		for _, p := range peers {
			if p.Direct && p.Health != snapshot.Unreachable && p.Role == identity.RoleNode && p.Subnet != s.subnet &&
				permits(gc.Visibility, s.subnet, p.Subnet) && !slices.Contains(gc.Reach, p.Subnet) {
				gc.Reach = append(gc.Reach, p.Subnet)
			}
		}
		slices.Sort(gc.Reach)
		if len(gc.Reach) > maxGatewayReach {
			gc.Reach = gc.Reach[:maxGatewayReach]
		}
		out = append(out, gc)
	}
	return out
}

// maxGatewayReach is the snapshot codec's bound on GatewayChannel.Reach.
const maxGatewayReach = 16

// refreshScope rebuilds the directory from the registry and, on a
// gateway, the set of neighbouring subnets' gateways it keeps sessions
// with (from their summaries). Loop goroutine only.
func (n *Node) refreshScope(now time.Time) {
	s := n.scope
	// A directory rebuild walks every proven member and every roster: at
	// most once a scopeRebuildInterval (a lookup that misses asks the
	// registry meanwhile).
	if now.Sub(s.builtAt) < scopeRebuildInterval {
		return
	}
	s.builtAt = now
	held := n.summaries.All()
	roster := make(map[identity.NodeID]string)
	for _, e := range held {
		if e.Stale(now) {
			continue
		}
		for _, id := range e.Roster {
			roster[id] = e.Summary.Path
		}
	}
	s.roster.Store(&roster)
	dir := n.trust.Subnets(now)
	for id, sub := range roster {
		if _, ok := dir[id]; !ok {
			dir[id] = sub // what a certificate proved here wins
		}
	}
	s.dir.Store(&dir)
	if !s.gateway {
		return
	}
	peers := map[identity.NodeID]bool{}
	for _, e := range held {
		if s.adjacent(e.Summary.Path) {
			for _, g := range e.Summary.Gateways {
				peers[g] = true
			}
		}
	}
	s.gatewayPeers.Store(&peers)
}

// inScope reports whether a peer's subnet is one this node's view shows in
// full: its own, or the focused one.
func (n *Node) inScope(sub string) bool {
	f := *n.scope.focus.Load()
	return sub == n.subnet || (f != "" && sub == f)
}

// scopedTrust is the transport's Trust on a carved mesh: the registry, and
// for a node no certificate proved here, the rosters of the fresh
// summaries (signed by certified members of the node's subnet): routes to
// members of other subnets are believed that far, no further. Admission at
// a handshake is the registry's alone.
type scopedTrust struct {
	*trust.Registry
	scope *scope
}

// Known implements transport.Trust.
func (t scopedTrust) Known(id identity.NodeID, now time.Time) (transport.Admission, bool) {
	if adm, ok := t.Registry.Known(id, now); ok {
		return adm, true
	}
	if sub, ok := (*t.scope.roster.Load())[id]; ok {
		return transport.Admission{Role: identity.RoleNode, Expires: now.Add(subnetRosterTrust), Subnet: sub}, true
	}
	return transport.Admission{}, false
}

// subnetRosterTrust is how long a roster-known node counts as known when
// asked: the roster is re-read on every refresh, so a node dropped from
// it stops counting within a refresh.
const subnetRosterTrust = time.Second
