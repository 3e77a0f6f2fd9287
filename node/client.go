package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/meshos"
	"github.com/deck-mesh/deck/node/placement"
	"github.com/deck-mesh/deck/node/snapshot"
)

// Client is one console's view of a node: the Client API (node/api) signed
// by that console's operator. Several clients (one per SSH session) can share
// a node.
type Client struct {
	n        *Node
	signer   identity.Signer
	opName   string
	cmds     *command.Commands
	readOnly string
}

var _ api.Client = (*Client)(nil)

// NewClient makes a console client on n. signer may be nil (read-only);
// name is the operator's local name for display.
func (n *Node) NewClient(signer identity.Signer, name string) (*Client, error) {
	c := &Client{n: n, signer: signer, opName: name}
	cmds, err := command.New(command.Config{Signer: signer, Source: source{n}, Committer: n.commit, Now: n.now})
	if err != nil {
		return nil, err
	}
	c.cmds = cmds
	return c, nil
}

// source adapts the node to the command plane's view of the world.
type source struct{ n *Node }

func (s source) Snapshot() *snapshot.ClusterSnapshot { return placement.HostingView(s.n.pub.load()) }
func (s source) Spec() meshos.Spec                   { return s.n.opts.Spec }
func (s source) AdminState() *command.AdminState     { return s.n.AdminState() }

// Node is the node behind the client.
func (c *Client) Node() *Node { return c.n }

func (c *Client) Cluster() string { return c.n.opts.Cluster.Name }

// Operator reports who signs this client's commands. A client without a key,
// or with a key the registry does not know, is read-only.
func (c *Client) Operator() (api.OperatorInfo, bool, string) {
	if c.signer == nil {
		return api.OperatorInfo{}, false, "no operator key (deck identity generate NAME, then --identity NAME)"
	}
	info := api.OperatorInfo{ID: c.signer.SignerID(), Name: c.opName}
	if _, ok := c.n.AdminState().Operator(info.ID); !ok {
		return info, false, fmt.Sprintf("operator %s (%s) is not registered in this cluster", c.opName, info.ID)
	}
	return info, true, ""
}

func (c *Client) Snapshot() *snapshot.ClusterSnapshot { return c.n.pub.load() }

func (c *Client) WatchSnapshots(ctx context.Context) <-chan *snapshot.ClusterSnapshot {
	return c.n.pub.watch(ctx)
}

func (c *Client) SubscribeLogs(ctx context.Context, f api.LogFilter) (*api.Stream[api.LogRecord], error) {
	return c.n.subs.SubscribeLogs(ctx, c.n.allNodeIDs, f)
}

func (c *Client) SubscribeFailures(ctx context.Context, sinceSeq uint64) (*api.Stream[api.FailureRecord], error) {
	return c.n.subs.SubscribeFailures(ctx, c.n.allNodeIDs, sinceSeq)
}

func (c *Client) Audit() api.AuditQuery { return &auditQuery{n: c.n} }

func (c *Client) Admin() api.AdminCommands { return gated{c}.admin() }

func (c *Client) ICE() api.IceCommands { return c.cmds.ICE() }

func (c *Client) Preview(ctx context.Context, a api.Action) (api.BlastRadius, error) {
	return c.cmds.Preview(ctx, a)
}

// gated refuses admin commits from a client without a key before any work.
type gated struct{ c *Client }

func (g gated) admin() api.AdminCommands { return g.c.cmds.Admin() }

// auditQuery filters the folded audit trail plus local rejections.
type auditQuery struct {
	n         *Node
	recent    int
	operator  identity.NodeID
	t0, t1    time.Time
	forceOnly bool
	since     uint64
}

func (q *auditQuery) clone() *auditQuery { cp := *q; return &cp }

func (q *auditQuery) Recent(n int) api.AuditQuery { c := q.clone(); c.recent = n; return c }
func (q *auditQuery) ByOperator(id api.NodeID) api.AuditQuery {
	c := q.clone()
	c.operator = id
	return c
}
func (q *auditQuery) Between(t0, t1 time.Time) api.AuditQuery {
	c := q.clone()
	c.t0, c.t1 = t0, t1
	return c
}
func (q *auditQuery) ForceOnly() api.AuditQuery       { c := q.clone(); c.forceOnly = true; return c }
func (q *auditQuery) Since(seq uint64) api.AuditQuery { c := q.clone(); c.since = seq; return c }

func (q *auditQuery) match(r *api.AuditRecord) bool {
	if q.operator != 0 && r.Operator != q.operator {
		return false
	}
	if q.forceOnly && !r.ICE {
		return false
	}
	if q.since != 0 && r.Seq <= q.since {
		return false
	}
	if !q.t0.IsZero() && r.IssuedAt.Before(q.t0) {
		return false
	}
	if !q.t1.IsZero() && r.IssuedAt.After(q.t1) {
		return false
	}
	return true
}

// all returns every audit record, ledger order first, then local rejections
// by time.
func (q *auditQuery) all() []api.AuditRecord {
	s, _ := q.n.fold.State()
	var recs []api.AuditRecord
	if s != nil {
		recs = slices.Clone(s.Audit)
	}
	return append(recs, q.n.rejects.list()...)
}

func (q *auditQuery) Collect(ctx context.Context) ([]api.AuditRecord, error) {
	var out []api.AuditRecord
	for _, r := range q.all() {
		if q.match(&r) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b api.AuditRecord) int { return a.IssuedAt.Compare(b.IssuedAt) })
	if q.recent > 0 && len(out) > q.recent {
		out = out[len(out)-q.recent:]
	}
	return out, ctx.Err()
}

// Stream backfills the matching records and then follows the fold.
func (q *auditQuery) Stream(ctx context.Context) (*api.Stream[api.AuditRecord], error) {
	backfill, err := q.Collect(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	st := api.NewStream[api.AuditRecord](auditStreamLen, cancel)
	seen := make(map[string]bool, len(backfill))
	for _, r := range backfill {
		seen[auditKey(&r)] = true
		st.Offer(r)
	}
	go func() {
		defer st.Close()
		t := time.NewTicker(refreshInterval)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-q.n.fold.Changed():
			case <-t.C:
			}
			for _, r := range q.all() {
				k := auditKey(&r)
				if seen[k] || !q.match(&r) {
					continue
				}
				seen[k] = true
				st.Offer(r)
			}
		}
	}()
	return st, nil
}

const auditStreamLen = 1024

func auditKey(r *api.AuditRecord) string { return fmt.Sprintf("%s/%d", r.EventID, r.Seq) }

func (q *auditQuery) Verify(ctx context.Context) error { return q.n.ledger.Verify(ctx) }

// RotateOperator commits a rotation of this client's operator key to next,
// signed by both keys.
func (c *Client) RotateOperator(ctx context.Context, next identity.Signer) (api.Receipt, error) {
	return c.cmds.RotateOperator(ctx, next)
}

// AddOperator commits a registry event adding an operator.
func (c *Client) AddOperator(ctx context.Context, name string, pub []byte) (api.Receipt, error) {
	return c.cmds.AddOperator(ctx, name, pub)
}

// RemoveOperator commits a registry event removing operator id.
func (c *Client) RemoveOperator(ctx context.Context, id api.NodeID) (api.Receipt, error) {
	return c.cmds.RemoveOperator(ctx, id)
}

// AdminThreshold is the number of distinct operators' signatures an admin
// or registry event needs (the ICE threshold is ICE().Threshold()).
func (c *Client) AdminThreshold() int {
	admin, _ := c.n.AdminState().Thresholds()
	return admin
}

// PrepareAdmin builds, previews and checks an admin or registry action and
// returns it ready to sign without committing it: the co-signing path for
// clusters whose admin threshold is above one. Its SigningPayload travels
// like an ICE payload; LoadProposal rebuilds it for co-signers, and Commit
// takes the collected signatures.
func (c *Client) PrepareAdmin(ctx context.Context, a api.Action) (api.SimulatedProposal, error) {
	return c.cmds.Prepare(ctx, a)
}

// LoadProposal rebuilds an exported signing payload, admin, registry or
// ICE, checked against the current state (ICE().Load does the same).
func (c *Client) LoadProposal(ctx context.Context, payload []byte) (api.SimulatedProposal, error) {
	return c.cmds.ICE().Load(ctx, payload)
}

var _ api.SubnetClient = (*Client)(nil)

// FocusSubnet implements api.SubnetClient (Node.FocusSubnet).
func (c *Client) FocusSubnet(ctx context.Context, path string) error {
	return c.n.FocusSubnet(ctx, path)
}

// QuerySubnet implements api.SubnetClient (Node.QuerySubnet).
func (c *Client) QuerySubnet(ctx context.Context, path string) (snapshot.SubnetSummary, error) {
	return c.n.QuerySubnet(ctx, path)
}
