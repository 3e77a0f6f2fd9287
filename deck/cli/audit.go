package cli

import (
	"path/filepath"

	"fmt"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/command/chainfold"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

func auditCmd(stdio IO) *cobra.Command {
	var recent int
	var operator string
	var between []string
	var since uint64
	var forceOnly, verify bool
	var dataDir string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the admin chain: who did what, accepted or rejected",
		Long: `audit reads the cluster's admin chain (every signed admin and ICE event,
replicated to every node) as the console's node pulled it on joining, plus
the attempts this console's node refused. Filters combine.

--between takes two RFC 3339 times, T0 and T1 (inclusive), in any of three
spellings: --between T0 T1, --between T0,T1 or --between T0 --between T1.
--since SEQ keeps the events after ledger position SEQ (the SEQ column).`,
		Example: `  deck audit --recent 20
  deck audit --force-only --output json
  deck audit --between 2026-11-26T09:00:00Z 2026-11-26T10:00:00Z
  deck audit --since 12
  deck audit --verify`,
		Args: func(cmd *cobra.Command, args []string) error {
			// The one positional argument allowed is T1 of
			// "--between T0 T1".
			if len(args) == 0 || (len(args) == 1 && len(between) == 1) {
				return nil
			}
			return usageErr("audit takes no arguments besides T1 of --between T0 T1 (got %q)", args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			var t0, t1 time.Time
			if len(between) > 0 {
				if t0, t1, err = parseBetween(append(between, args...)); err != nil {
					return err
				}
			}
			if recent < 0 {
				return usageErr("--recent must not be negative")
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			if verify && dataDir != "" {
				return verifyDataDir(cmd, e, stdio, dataDir)
			}
			s, err := e.join(cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			q := s.client.Audit()
			if verify {
				if err := q.Verify(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintf(stdio.Out, "admin chain intact: %d events verified\n", s.client.Snapshot().AdminHead.Count)
				return nil
			}
			if recent > 0 {
				q = q.Recent(recent)
			}
			cs := s.client.Snapshot()
			if operator != "" {
				id, err := resolveOperator(cs, operator)
				if err != nil {
					return err
				}
				q = q.ByOperator(id)
			}
			if since > 0 {
				q = q.Since(since)
			}
			if forceOnly {
				q = q.ForceOnly()
			}
			if len(between) > 0 {
				q = q.Between(t0, t1)
			}
			recs, err := q.Collect(cmd.Context())
			if err != nil {
				return err
			}
			if out == OutputJSON {
				nm := namesOf(cs)
				docs := make([]auditDoc, 0, len(recs))
				for _, r := range recs {
					docs = append(docs, auditJSON(r, nm))
				}
				return writeJSON(stdio.Out, docs)
			}
			printAudit(stdio.Out, recs, namesOf(cs))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&recent, "recent", 50, "show the last `N` events (0: all)")
	f.StringVar(&operator, "operator", "", "only events by this `operator` (name or id)")
	f.Uint64Var(&since, "since", 0, "only events after ledger position `SEQ` (the SEQ column)")
	f.StringSliceVar(&between, "between", nil, "only events issued from T0 to T1 (RFC 3339, inclusive): `T0 T1`, T0,T1 or --between T0 --between T1")
	f.BoolVar(&forceOnly, "force-only", false, "only ICE (break-glass) events")
	f.BoolVar(&verify, "verify", false, "verify the hash-linked admin chain (the console's copy, or a node's with --data)")
	f.StringVar(&dataDir, "data", "", "with --verify: a stopped node's data `dir`, checked on disk")
	addListenFlag(f)
	return cmd
}

// parseBetween reads the two times of --between, however they were spelled.
func parseBetween(v []string) (time.Time, time.Time, error) {
	if len(v) != 2 {
		return time.Time{}, time.Time{}, usageErr("--between wants two times, T0 and T1: --between T0 T1 (or T0,T1), got %q", v)
	}
	a, b := v[0], v[1]
	t0, err := time.Parse(time.RFC3339, strings.TrimSpace(a))
	if err != nil {
		return t0, t0, usageErr("--between T0: %v", err)
	}
	t1, err := time.Parse(time.RFC3339, strings.TrimSpace(b))
	if err != nil {
		return t0, t1, usageErr("--between T1: %v", err)
	}
	if t1.Before(t0) {
		return t0, t1, usageErr("--between: T1 is before T0")
	}
	return t0, t1, nil
}

// resolveOperator accepts a registered operator's name or an id.
func resolveOperator(cs *snapshot.ClusterSnapshot, ref string) (identity.NodeID, error) {
	for _, o := range cs.Operators {
		if o.Name == ref {
			return o.ID, nil
		}
	}
	id, err := identity.ParseNodeID(ref)
	if err != nil {
		return 0, fmt.Errorf("%w: --operator %q is neither an operator of cluster %s nor an id", api.ErrNotFound, ref, cs.Cluster)
	}
	return id, nil
}

type auditDoc struct {
	Seq      uint64 `json:"seq"`
	Local    bool   `json:"local"`
	EventID  string `json:"event_id"`
	At       string `json:"at"`
	IssuedAt string `json:"issued_at"`
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason,omitempty"`
	// Operator is absent on an event this node refused at ingestion: the
	// event only names one (the reason says which); From is the node that
	// sent it.
	Operator     *jsonID  `json:"operator,omitempty"`
	OperatorName string   `json:"operator_name"`
	From         *jsonID  `json:"from,omitempty"`
	FromName     string   `json:"from_name,omitempty"`
	Command      string   `json:"command"`
	Target       string   `json:"target"`
	ICE          bool     `json:"ice"`
	Signatures   []jsonID `json:"signatures"`
}

// localRejection marks the seqs of rejections a node recorded locally (they
// never entered the ledger).
const localRejection = 1 << 63

func auditJSON(r api.AuditRecord, nm names) auditDoc {
	d := auditDoc{Seq: r.Seq &^ localRejection, Local: r.Seq&localRejection != 0, EventID: r.EventID, At: isoTime(r.At),
		IssuedAt: isoTime(r.IssuedAt), Outcome: r.Outcome.String(), Reason: r.Reason,
		Command: string(r.Action.Verb), Target: r.Action.Target(), ICE: r.ICE, Signatures: []jsonID{}}
	if r.Operator.Valid() {
		op := idJSON(r.Operator)
		d.Operator, d.OperatorName = &op, nm.ops[r.Operator]
	}
	if r.From.Valid() {
		from := idJSON(r.From)
		d.From, d.FromName = &from, nm.node(r.From)
	}
	for _, s := range r.Signatures {
		d.Signatures = append(d.Signatures, idJSON(s.Operator))
	}
	return d
}

func printAudit(w io.Writer, recs []api.AuditRecord, nm names) {
	if len(recs) == 0 {
		fmt.Fprintln(w, "no admin events match")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tISSUED (UTC)\tOUTCOME\tOPERATOR\tFROM\tCOMMAND\tTARGET\tSIGS\tEVENT\tREASON")
	for _, r := range recs {
		cmdName := string(r.Action.Verb)
		if r.ICE {
			cmdName = "ICE " + cmdName
		}
		outcome, seq := r.Outcome.String(), fmt.Sprint(r.Seq)
		if r.Seq&localRejection != 0 {
			outcome, seq = outcome+" (here)", "-"
		}
		ev := r.EventID
		if len(ev) > 12 {
			ev = ev[:12]
		}
		// A record refused at ingestion names the node that sent it (FROM),
		// and no operator: the event only claims one.
		op, from := "-", "-"
		if r.Operator.Valid() {
			op = nm.operator(r.Operator)
		}
		if r.From.Valid() {
			from = nm.node(r.From)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", seq, r.IssuedAt.UTC().Format("2006-01-02 15:04:05"), outcome,
			op, from, cmdName, nm.target(r.Action.Target()), len(r.Signatures), orDash(ev), orDash(r.Reason))
	}
	tw.Flush()
}

// verifyDataDir checks a stopped node's own hash-linked copy of the admin
// chain on disk: a modified, reordered or removed record is named.
func verifyDataDir(cmd *cobra.Command, e *env, stdio IO, dir string) error {
	c, _, err := e.clusterFile(cmd)
	if err != nil {
		return err
	}
	db, err := chain.Open(chain.Config{Dir: filepath.Join(dir, "chain"), RetentionInterval: -1, ValueLogGCInterval: -1})
	if err != nil {
		return fmt.Errorf("open %s (is the node still running? stop it first): %w", dir, err)
	}
	defer db.Close()
	l := db.Ledger(chainfold.Validator(c.Name, nil))
	if err := l.Verify(cmd.Context()); err != nil {
		return err
	}
	fmt.Fprintf(stdio.Out, "admin chain in %s intact: %d events verified\n", dir, l.Head().Count)
	return nil
}
