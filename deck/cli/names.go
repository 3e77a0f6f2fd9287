package cli

import (
	"fmt"
	"regexp"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// names turns ids into what an operator recognises in pretty output: node
// labels and operator names from the cluster view. JSON keeps the ids.
type names struct {
	nodes map[identity.NodeID]string
	ops   map[identity.NodeID]string
}

func namesOf(cs *snapshot.ClusterSnapshot) names {
	nm := names{nodes: map[identity.NodeID]string{}, ops: map[identity.NodeID]string{}}
	if cs == nil {
		return nm
	}
	for _, nv := range cs.Nodes {
		if nv.Label != "" && !nv.Observer {
			nm.nodes[nv.ID] = nv.Label
		}
	}
	for _, o := range cs.Operators {
		if o.Name != "" {
			nm.ops[o.ID] = o.Name
		}
	}
	return nm
}

// node is a node's label, or its short id when it has none.
func (nm names) node(id identity.NodeID) string {
	if l, ok := nm.nodes[id]; ok {
		return l
	}
	return id.Short()
}

// operator is an operator's registered name, or its short id.
func (nm names) operator(id identity.NodeID) string {
	if n, ok := nm.ops[id]; ok {
		return n
	}
	return id.Short()
}

var fullID = regexp.MustCompile(`0x[0-9a-f]{16}`)

// target rewrites the node ids inside an action target ("node:0x…",
// "chain:inference@0x…") as labels.
func (nm names) target(t string) string {
	return fullID.ReplaceAllStringFunc(t, func(s string) string {
		id, err := identity.ParseNodeID(s)
		if err != nil {
			return s
		}
		if l, ok := nm.nodes[id]; ok {
			return l
		}
		return s
	})
}

// describe says in words what an action targets.
func (nm names) describe(a api.Action) string {
	switch a.Verb {
	case api.VerbRestartDaemon, api.VerbForceRestartDaemon:
		return "daemon " + a.Daemon
	case api.VerbForceEvictReplica:
		return fmt.Sprintf("the %s replica on %s", a.Chain, nm.node(a.Peer))
	case api.VerbForceCutover:
		return fmt.Sprintf("chain %s, new leader %s", a.Chain, nm.node(a.Peer))
	case api.VerbKillMigration:
		return "migration " + a.Migration
	case api.VerbFreezeCluster, api.VerbThawCluster, api.VerbFlushAvoidLists:
		return "the whole cluster"
	case api.VerbAddOperator:
		return fmt.Sprintf("operator %s (%s)", a.OperatorName, a.OperatorID.Short())
	case api.VerbRemoveOperator, api.VerbRotateOperator:
		return "operator " + nm.operator(a.OperatorID)
	}
	if l, ok := nm.nodes[a.Node]; ok {
		return fmt.Sprintf("node %s (%s)", l, a.Node)
	}
	return "node " + a.Node.String()
}
