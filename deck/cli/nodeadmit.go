package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Membership on the command line: which nodes wait for admission, and the
// admit-node / revoke-node registry events, previewed and confirmed like
// every admin action.

func nodePendingCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pending",
		Short: "List nodes that hold the PSK but wait for admission (no certificate the mesh accepts)",
		Args:  cobra.NoArgs,
		RunE: joined(stdio, func(cmd *cobra.Command, _ []string, s *session, out string) error {
			return printPending(stdio, out, s.client.Snapshot(), time.Now())
		}),
	}
	addListenFlag(cmd.Flags())
	return cmd
}

type pendingRow struct {
	jsonID
	Key       string   `json:"public_key"`
	Addr      string   `json:"addr"`
	Reason    string   `json:"reason"`
	FirstSeen string   `json:"first_seen"`
	LastSeen  string   `json:"last_seen"`
	SeenBy    []jsonID `json:"seen_by"`
}

func printPending(stdio IO, out string, cs *snapshot.ClusterSnapshot, now time.Time) error {
	nm := namesOf(cs)
	if out == OutputJSON {
		rows := make([]pendingRow, 0, len(cs.PendingNodes))
		for _, p := range cs.PendingNodes {
			r := pendingRow{jsonID: idJSON(p.ID), Key: identity.PublicKeyString(p.Key), Addr: p.Addr, Reason: p.Reason,
				FirstSeen: isoTime(p.FirstSeen), LastSeen: isoTime(p.LastSeen), SeenBy: []jsonID{}}
			for _, by := range p.SeenBy {
				r.SeenBy = append(r.SeenBy, idJSON(by))
			}
			rows = append(rows, r)
		}
		return writeJSON(stdio.Out, rows)
	}
	if len(cs.PendingNodes) == 0 {
		fmt.Fprintf(stdio.Out, "cluster %s: no node is waiting for admission\n", cs.Cluster)
		return nil
	}
	revoked := map[identity.NodeID]bool{}
	for _, r := range cs.Revoked {
		revoked[r.Node] = true
	}
	tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSEEN BY\tWAITING\tREASON")
	admissible := 0
	for _, p := range cs.PendingNodes {
		if !revoked[p.ID] {
			admissible++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, orDash(p.Addr), seenBy(nm, p.SeenBy),
			now.Sub(p.FirstSeen).Round(time.Second), p.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if admissible > 0 {
		fmt.Fprintf(stdio.Out, "admit one with `deck node admit NODE` (it then joins placement), or let it present a certificate\n")
	}
	return nil
}

// seenBy names the first reporters and counts the rest, so a node every
// member reports does not push the reason off the line.
func seenBy(nm names, ids []identity.NodeID) string {
	const shown = 3
	by := make([]string, 0, shown)
	for i, id := range ids {
		if i == shown {
			return strings.Join(by, ",") + fmt.Sprintf(" +%d", len(ids)-shown)
		}
		by = append(by, nm.node(id))
	}
	return strings.Join(by, ",")
}

func nodeAdmitCmd(stdio IO) *cobra.Command {
	return membershipCmd(stdio, api.VerbAdmitNode, "admit NODE",
		"Admit a pending node into the cluster (a signed registry event)",
		`admit commits a registry event that admits a pending node — one that holds the
cluster PSK but no certificate the mesh accepts — by the key it presented: every
node then treats it as a member (it may hold chains and daemons, lead and relay).
NODE is its id (0x…, decimal or a unique prefix) as `+"`deck node pending`"+` lists it.
A node that is not pending anywhere exits 3.`,
		`  deck node pending
  deck node admit 0x3f2a --preview
  deck node admit 0x3f2a --yes`)
}

func nodeRevokeCmd(stdio IO) *cobra.Command {
	return membershipCmd(stdio, api.VerbRevokeNode, "revoke NODE",
		"Revoke a node for good (a signed registry event)",
		`revoke commits a registry event that cuts a node off everywhere: its sessions
close, its snapshots, records and events are ignored, what it ran and held is
placed elsewhere (the blast radius shows it), and neither its certificate nor an
admission lets it back: only a new key can be admitted again. NODE is a label,
an id (0x… or decimal) or a unique id prefix.`,
		`  deck node revoke node-4 --preview
  deck node revoke node-4 --yes`)
}

func membershipCmd(stdio IO, verb api.Verb, use, short, long, example string) *cobra.Command {
	var f actionFlags
	var so signOnlyFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: example,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if err := f.check(verb); err != nil {
				return err
			}
			if err := so.check(&f); err != nil {
				return err
			}
			s, err := joinToSign(cmd, stdio, f.preview)
			if err != nil {
				return err
			}
			defer s.Close()
			cs := s.client.Snapshot()
			var a api.Action
			switch verb {
			case api.VerbAdmitNode:
				p, err := resolvePending(cs, args[0])
				if err != nil {
					return err
				}
				a = api.Action{Verb: verb, Node: p.ID, OperatorKey: append([]byte(nil), p.Key...)}
			case api.VerbRevokeNode:
				id, err := resolveRevocable(cs, args[0])
				if err != nil {
					return err
				}
				a = api.Action{Verb: verb, Node: id}
			}
			return runAdminAction(cmd, stdio, out, s, a, f, so, nil)
		},
	}
	f.register(cmd, verb)
	so.register(cmd)
	addListenFlag(cmd.Flags())
	return cmd
}

// resolvePending finds a pending node by id or unique id prefix.
func resolvePending(cs *snapshot.ClusterSnapshot, ref string) (snapshot.PendingNode, error) {
	ref = strings.TrimSpace(ref)
	var found []snapshot.PendingNode
	for _, p := range cs.PendingNodes {
		if idMatches(p.ID, ref) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		if len(found[0].Key) != 32 || identity.IDFromPublicKey(found[0].Key) != found[0].ID {
			return snapshot.PendingNode{}, fmt.Errorf("%w: pending node %s reported without a key that derives to its id", api.ErrInvalid, found[0].ID)
		}
		return found[0], nil
	case 0:
		return snapshot.PendingNode{}, fmt.Errorf("%w: no pending node %q in cluster %s (deck node pending lists them)", api.ErrNotFound, ref, cs.Cluster)
	}
	return snapshot.PendingNode{}, fmt.Errorf("%w: %q matches %d pending nodes: give more of the id", api.ErrInvalid, ref, len(found))
}

// resolveRevocable finds a node to revoke: a member (label, id, prefix), a
// pending node, or any full id (a node seen before, to keep out for good).
func resolveRevocable(cs *snapshot.ClusterSnapshot, ref string) (identity.NodeID, error) {
	if id, err := resolveNode(cs, ref); err == nil {
		return id, nil
	}
	if p, err := resolvePending(cs, ref); err == nil {
		return p.ID, nil
	}
	if id, err := identity.ParseNodeID(strings.TrimSpace(ref)); err == nil && id.Valid() {
		return id, nil
	}
	return 0, fmt.Errorf("%w: no node %q in cluster %s (a full id revokes a node that is not connected)", api.ErrNotFound, ref, cs.Cluster)
}

// idMatches: the id itself (0x… or decimal) or a hex prefix of it.
func idMatches(id identity.NodeID, ref string) bool {
	if parsed, err := identity.ParseNodeID(ref); err == nil && parsed == id {
		return true
	}
	hex := strings.TrimPrefix(strings.ToLower(ref), "0x")
	return len(hex) >= minIDPrefix && len(hex) < 16 && isHex(hex) && strings.HasPrefix(fmt.Sprintf("%016x", uint64(id)), hex)
}
