package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/identity"
)

// tailPollInterval is how often `deck chain tail` asks for new records.
const tailPollInterval = time.Second

// tailBackfill is how many records `deck chain tail` starts with, per chain
// instance, without --from.
const tailBackfill = 10

func chainCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "List, inspect and tail the mesh's chains (MeshDB)",
		Long: `chain reads the chains MeshDB queries: every node's own logs, failures and
snapshot history, the admin ledger every node holds, and the workload
groups' replicated chains.`,
	}
	cmd.AddCommand(chainLsCmd(stdio), chainInspectCmd(stdio), chainTailCmd(stdio))
	return cmd
}

func chainLsCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List every chain: kind, holders, leader, head",
		Args:  cobra.NoArgs,
		RunE: joined(stdio, func(cmd *cobra.Command, _ []string, s *session, out string) error {
			cols, rows, st, err := collect(cmd.Context(), s, `chains()`)
			if err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, resultJSON(cols, rows, st))
			}
			return printTable(stdio.Out, cols, rows, namesOf(s.client.Snapshot()))
		}),
	}
}

// collect runs a query to the end.
func collect(ctx context.Context, s *session, q string) ([]api.QueryColumn, []api.QueryRow, api.QueryStatus, error) {
	run, err := s.client.Query(ctx, q, api.QueryOptions{NoCache: true})
	if err != nil {
		return nil, nil, api.QueryStatus{}, asQueryError(err)
	}
	rows, st, err := run.Collect()
	return run.Columns, rows, st, err
}

// chainRef is a chain's name as a query writes it.
func chainRef(name string) string {
	for _, c := range name {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return strconv.Quote(name)
		}
	}
	return name
}

func chainInspectCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "A chain's holders, its columns, each instance's bounds and its lineage",
		Args:  cobra.ExactArgs(1),
		RunE: joined(stdio, func(cmd *cobra.Command, args []string, s *session, out string) error {
			return inspectChain(cmd.Context(), stdio, s, out, args[0])
		}),
	}
}

type inspectDoc struct {
	Chain   resultDoc    `json:"chain"`
	Columns []columnJSON `json:"columns"`
	Bounds  resultDoc    `json:"bounds"`
	Lineage *resultDoc   `json:"lineage,omitempty"`
}

func inspectChain(ctx context.Context, stdio IO, s *session, out, name string) error {
	ccols, crow, cst, err := collect(ctx, s, fmt.Sprintf(`chains() where chain = %s`, strconv.Quote(name)))
	if err != nil {
		return err
	}
	if len(crow) == 0 {
		return fmt.Errorf("%w: no chain %q (deck chain ls lists them)", api.ErrNotFound, name)
	}
	ref := chainRef(name)
	// The columns, from the plan of a read (it runs nothing).
	plan, err := s.client.Query(ctx, fmt.Sprintf("latest(%s)", ref), api.QueryOptions{Explain: true})
	if err != nil {
		return asQueryError(err)
	}
	plan.Cancel()
	bcols, brows, bst, err := collect(ctx, s, fmt.Sprintf("bounds(%s)", ref))
	if err != nil {
		return err
	}
	var lineage *resultDoc
	var lcols []api.QueryColumn
	var lrows []api.QueryRow
	if crow[0][1].S == "replicated" {
		var lst api.QueryStatus
		if lcols, lrows, lst, err = collect(ctx, s, fmt.Sprintf("lineage(%s)", ref)); err == nil {
			d := resultJSON(lcols, lrows, lst)
			lineage = &d
		}
	}
	nm := namesOf(s.client.Snapshot())
	if out == OutputJSON {
		doc := inspectDoc{Chain: resultJSON(ccols, crow, cst), Bounds: resultJSON(bcols, brows, bst), Lineage: lineage}
		for _, c := range plan.Columns {
			doc.Columns = append(doc.Columns, columnJSON{Name: c.Name, Type: c.Kind.String()})
		}
		return writeJSON(stdio.Out, doc)
	}
	tw := tabwriter.NewWriter(stdio.Out, 0, 0, 2, ' ', 0)
	for i, c := range ccols {
		fmt.Fprintf(tw, "%s\t%s\n", strings.ToUpper(c.Name), cellText(crow[0][i], nm))
	}
	var colNames []string
	for _, c := range plan.Columns {
		colNames = append(colNames, c.Name+":"+c.Kind.String())
	}
	fmt.Fprintf(tw, "COLUMNS\t%s\n", strings.Join(colNames, " "))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdio.Out)
	if err := printTable(stdio.Out, bcols, brows, nm); err != nil {
		return err
	}
	warnPartial(stdio.Err, bst, nm)
	if lineage != nil && len(lrows) > 0 {
		fmt.Fprintln(stdio.Out)
		return printTable(stdio.Out, lcols, lrows, nm)
	}
	return nil
}

type tailOptions struct {
	from   uint64
	follow bool
}

func chainTailCmd(stdio IO) *cobra.Command {
	o := tailOptions{follow: true}
	cmd := &cobra.Command{
		Use:   "tail NAME",
		Short: "Print a chain's records from --from SEQ (default: the last 10 of each instance) and follow new ones",
		Long: `tail prints a chain's records, oldest first, from --from SEQ (of each
instance: each node's own logs number from 1) or else the last 10 of each
instance, then follows new ones until Ctrl-C. --follow=false stops after
what is there. -o json prints one JSON object per record.`,
		Example: `  deck chain tail logs
  deck chain tail failures --from 1 --follow=false
  deck chain tail trainer -o json`,
		Args: cobra.ExactArgs(1),
		RunE: joined(stdio, func(cmd *cobra.Command, args []string, s *session, out string) error {
			return tailChain(cmd.Context(), stdio, s, out, args[0], o)
		}),
	}
	cmd.Flags().Uint64Var(&o.from, "from", 0, "start at `SEQ` (0: the last 10 records of each instance)")
	cmd.Flags().BoolVar(&o.follow, "follow", true, "keep printing new records until Ctrl-C")
	return cmd
}

// tailChain reads the chain from its start (the last records, or --from),
// then each instance from its cursor, every tailPollInterval: one seq
// range read per instance, on the node that holds it.
func tailChain(ctx context.Context, stdio IO, s *session, out, name string, o tailOptions) error {
	ref := chainRef(name)
	cursors := map[identity.NodeID]uint64{} // instance → last seq printed
	q := fmt.Sprintf("latest(%s, %d) | sort seq", ref, tailBackfill)
	if o.from > 0 {
		q = fmt.Sprintf("between(%s, %d) | sort seq", ref, o.from)
	}
	perNode, err := tailRead(ctx, stdio, s, out, q, cursors)
	if err != nil || !o.follow {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tailPollInterval):
		}
		var qs []string
		if perNode {
			for _, nv := range s.client.Snapshot().Nodes {
				if !nv.Observer {
					next := max(cursors[nv.ID]+1, o.from, 1)
					qs = append(qs, fmt.Sprintf("between(%s, %d) where node = %q | sort seq", ref, next, nv.ID.String()))
				}
			}
		} else {
			qs = []string{fmt.Sprintf("between(%s, %d) | sort seq", ref, max(cursors[0]+1, o.from, 1))}
		}
		for _, q := range qs {
			if _, err := tailRead(ctx, stdio, s, out, q, cursors); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// tailRead runs one read and prints the records past their instance's
// cursor; perNode says whether the chain has a node column.
func tailRead(ctx context.Context, stdio IO, s *session, out, q string, cursors map[identity.NodeID]uint64) (perNode bool, err error) {
	cols, rows, st, err := collect(ctx, s, q)
	if err != nil {
		return false, err
	}
	nm := namesOf(s.client.Snapshot())
	warnPartial(stdio.Err, st, nm)
	nodeCol := slices.IndexFunc(cols, func(c api.QueryColumn) bool { return c.Name == "node" })
	for _, r := range rows {
		inst := identity.NodeID(0)
		if nodeCol >= 0 {
			inst = r[nodeCol].Node()
		}
		seq := uint64(r[0].I)
		if seq <= cursors[inst] {
			continue
		}
		cursors[inst] = seq
		if err := printRecord(stdio.Out, out, cols, r, nm); err != nil {
			return false, err
		}
	}
	return nodeCol >= 0, nil
}

// printRecord prints one record: columns as name=value, or one JSON object.
func printRecord(w io.Writer, out string, cols []api.QueryColumn, r api.QueryRow, nm names) error {
	if out == OutputJSON {
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c.Name] = jsonValue(r[i])
		}
		return json.NewEncoder(w).Encode(m)
	}
	parts := make([]string, 0, len(cols))
	for i, c := range cols {
		if c.Kind == api.KindBytes {
			parts = append(parts, c.Name+"="+r[i].String())
			continue
		}
		parts = append(parts, c.Name+"="+cellText(r[i], nm))
	}
	_, err := fmt.Fprintln(w, strings.Join(parts, " "))
	return err
}
