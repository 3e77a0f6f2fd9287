package tabs

import (
	"regexp"
	"sort"
	"strconv"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Consoles (the deck's own embedded node, a CLI's node) are observers: they
// join the mesh and gossip but host nothing. The helpers below keep them out
// of the counts of hosting nodes and label them so an operator never mistakes
// the console for a node it could drain.

// ConsoleSuffix marks the observer node this deck runs on.
const (
	ConsoleSelfSuffix  = " (this console)"
	ConsoleOtherSuffix = " (console)"
)

// NodeLabel is NodeName plus a console marker for observer nodes: the
// table and map form of a node's name.
func NodeLabel(s *snapshot.ClusterSnapshot, n *snapshot.NodeView) string {
	name := NodeName(s, n.ID)
	if !n.Observer {
		return name
	}
	if n.ID == s.Self {
		return name + ConsoleSelfSuffix
	}
	return name + ConsoleOtherSuffix
}

// IsConsole reports whether id is an observer (console) node.
func IsConsole(s *snapshot.ClusterSnapshot, id api.NodeID) bool {
	n := s.Node(id)
	return n != nil && n.Observer
}

// HostingNodes counts the nodes that host workloads (not consoles).
func HostingNodes(s *snapshot.ClusterSnapshot) int {
	c := 0
	for i := range s.Nodes {
		if !s.Nodes[i].Observer {
			c++
		}
	}
	return c
}

// SortedNodes returns the snapshot's nodes in display order: hosting nodes
// by label in natural order ("node-2" before "node-10"), then consoles.
func SortedNodes(s *snapshot.ClusterSnapshot) []*snapshot.NodeView {
	out := make([]*snapshot.NodeView, len(s.Nodes))
	for i := range s.Nodes {
		out[i] = &s.Nodes[i]
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Observer != b.Observer {
			return !a.Observer
		}
		// The names of the nodes at hand (NodeName would look each up
		// again: quadratic at a thousand nodes).
		na, nb := displayName(a), displayName(b)
		if na != nb {
			return NaturalLess(na, nb)
		}
		return a.ID < b.ID
	})
	return out
}

// NaturalLess orders strings with embedded numbers by value: "n2" < "n10".
func NaturalLess(a, b string) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, cb := a[i], b[j]
		if isDigit(ca) && isDigit(cb) {
			si := i
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			sj := j
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			da, db := trimZeros(a[si:i]), trimZeros(b[sj:j])
			if len(da) != len(db) {
				return len(da) < len(db)
			}
			if da != db {
				return da < db
			}
			continue
		}
		if ca != cb {
			return ca < cb
		}
		i++
		j++
	}
	return len(a)-i < len(b)-j
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// reachable reports whether the node's own view of its daemons is current.
func reachable(n *snapshot.NodeView) bool { return n.Health != snapshot.Unreachable }

// pluralS is "s" unless n is 1.
func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// nodeIDInText matches a NodeID as NodeID.String writes it.
var nodeIDInText = regexp.MustCompile(`0x[0-9a-f]{16}`)

// NameIDs replaces the node ids in text (a lockout target such as
// "chain:ledger.audit@0x5e6f708192a3b4c5") with node names.
func NameIDs(s *snapshot.ClusterSnapshot, text string) string {
	return nodeIDInText.ReplaceAllStringFunc(text, func(h string) string {
		v, err := strconv.ParseUint(h[2:], 16, 64)
		if err != nil {
			return h
		}
		return NodeName(s, api.NodeID(v))
	})
}

// displayName is NodeName for a node already at hand: its label, or its
// short id.
func displayName(n *snapshot.NodeView) string {
	if n.Label != "" {
		return n.Label
	}
	return n.ID.Short()
}
