package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/query/lang"
)

// queryOptions are the flags of `deck query`.
type queryOptions struct {
	explain bool
	timeout time.Duration
	memory  int64
	noCache bool
}

func queryCmd(stdio IO) *cobra.Command {
	var o queryOptions
	cmd := &cobra.Command{
		Use:   "query 'QUERY'",
		Short: "Run a MeshDB query over the mesh's chains (logs, failures, snapshots, admin, replicated chains)",
		Long: `query runs a MeshDB query: a read of a chain (latest, at, between, bounds,
scan), a lineage walk (lineage, siblings, descendants), the catalogue
(chains) or a join, then a filter and a pipeline of stages (where, window,
count/sum/avg/min/max/distinct/percentile … by, sort, limit, select).
Each read runs on the nearest healthy node holding the chain; filters,
windows and aggregates run there, the rest here. --explain prints the plan
with the chosen holders instead of running it. A query that does not parse
exits 2 and shows where. A result missing a holder's rows (unreachable,
truncated by its scan budget) is printed with a warning naming it.`,
		Example: `  deck query 'latest(snapshots) where node = "node-3"'
  deck query 'between(logs, -5m, now) where level >= warn | count by daemon'
  deck query 'lineage(forge-1)'
  deck query 'join(between(logs, -1h, now) where level >= warn, scan(failures), on daemon) | count by daemon'
  deck query 'between(logs, -1h, now) | window 5m | count by window, node' -o json
  deck query --explain 'latest(trainer)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runQuery(cmd, stdio, o, args[0]) },
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.explain, "explain", false, "print the plan (fragments and their holders) without running it")
	fl.DurationVar(&o.timeout, "timeout", 0, "give up after `DURATION` (default 30s)")
	fl.Int64Var(&o.memory, "memory", 0, "memory limit of the query in `BYTES` (default 64 MiB)")
	fl.BoolVar(&o.noCache, "no-cache", false, "do not answer from the result cache")
	return cmd
}

// queryError is a query that does not parse or type-check, printed with
// a caret under the column it points at.
// An unknown chain is not found (exit 3), anything else invalid (exit 2).
type queryError struct {
	qe       *api.QueryError
	notFound bool
}

func (e queryError) Error() string {
	caret := strings.ReplaceAll(e.qe.Caret(), "\n", "\n  ")
	return fmt.Sprintf("query: %s\n  %s", e.qe.Error(), caret)
}

func (e queryError) Unwrap() error {
	if e.notFound {
		return api.ErrNotFound
	}
	return e.qe
}

// asQueryError shows a query error with its caret.
func asQueryError(err error) error {
	var qe *api.QueryError
	if errors.As(err, &qe) {
		return queryError{qe: qe, notFound: errors.Is(err, api.ErrNotFound)}
	}
	return err
}

func runQuery(cmd *cobra.Command, stdio IO, o queryOptions, q string) error {
	out, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	// Syntax first: a query that does not parse needs no cluster.
	if _, err := lang.Parse(q); err != nil {
		return asQueryError(err)
	}
	s, err := joinCluster(stdio, cmd, false)
	if err != nil {
		return err
	}
	defer s.Close()
	run, err := s.client.Query(cmd.Context(), q, api.QueryOptions{Explain: o.explain, Timeout: o.timeout, MemoryLimitBytes: o.memory, NoCache: o.noCache})
	if err != nil {
		return asQueryError(err)
	}
	nm := namesOf(s.client.Snapshot())
	if o.explain {
		run.Cancel()
		if out == OutputJSON {
			return writeJSON(stdio.Out, planJSON(run.Plan))
		}
		_, err := fmt.Fprint(stdio.Out, explainText(run.Plan, nm))
		return err
	}
	rows, st, err := run.Collect()
	if err != nil {
		return err
	}
	if out == OutputJSON {
		return writeJSON(stdio.Out, resultJSON(run.Columns, rows, st))
	}
	if err := printTable(stdio.Out, run.Columns, rows, nm); err != nil {
		return err
	}
	warnPartial(stdio.Err, st, nm)
	fmt.Fprintf(stdio.Err, "%d row(s) · %d record(s) scanned on %d fragment(s) · %s%s\n", st.Rows, st.Scanned,
		len(run.Plan.Fragments), st.Elapsed.Round(time.Millisecond), map[bool]string{true: " · cached"}[st.Cached])
	return nil
}

// warnPartial names the fragments a result lacks.
func warnPartial(w io.Writer, st api.QueryStatus, nm names) {
	for _, m := range st.Missing {
		if m.Fragment < 0 {
			fmt.Fprintf(w, "deck: partial result: %s\n", m.Reason)
			continue
		}
		who := m.Chain
		if m.Instance != 0 {
			who += "@" + nm.node(m.Instance)
		}
		fmt.Fprintf(w, "deck: partial result: %s from %s: %s\n", who, nm.node(m.Holder), m.Reason)
	}
}

// explainText is the plan for people: its tree, with node labels.
func explainText(p api.QueryPlan, nm names) string {
	return fullID.ReplaceAllStringFunc(p.Text, func(s string) string {
		return nm.target(s)
	})
}

// cellText is one value for the pretty table.
func cellText(v api.Value, nm names) string {
	switch v.Kind {
	case api.KindNull:
		return "-"
	case api.KindNode:
		return nm.node(v.Node())
	case api.KindTime:
		return isoTime(v.Time())
	case api.KindString:
		return printable(v.S)
	}
	return v.String()
}

func printTable(w io.Writer, cols []api.QueryColumn, rows []api.QueryRow, nm names) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = strings.ToUpper(c.Name)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, v := range r {
			cells[i] = cellText(v, nm)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// jsonValue is a value in the CLI's JSON conventions: ids as {id, id_hex},
// times ISO 8601 UTC, durations integer milliseconds, levels by name.
func jsonValue(v api.Value) any {
	switch v.Kind {
	case api.KindNull:
		return nil
	case api.KindInt:
		return v.I
	case api.KindFloat:
		return v.F
	case api.KindString:
		return v.S
	case api.KindBool:
		return v.Bool()
	case api.KindTime:
		return isoTime(v.Time())
	case api.KindDuration:
		return time.Duration(v.I).Milliseconds()
	case api.KindNode:
		return idJSON(v.Node())
	case api.KindLevel:
		return strings.ToLower(v.String())
	case api.KindBytes:
		return v.B // base64
	}
	return nil
}

type columnJSON struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type missingJSON struct {
	Fragment int    `json:"fragment"`
	Chain    string `json:"chain"`
	Node     jsonID `json:"node"`
	Holder   jsonID `json:"holder"`
	Reason   string `json:"reason"`
}

type resultDoc struct {
	Columns   []columnJSON     `json:"columns"`
	Rows      []map[string]any `json:"rows"`
	Partial   bool             `json:"partial"`
	Missing   []missingJSON    `json:"missing"`
	Scanned   uint64           `json:"scanned"`
	Failovers int              `json:"failovers"`
	Cached    bool             `json:"cached"`
	ElapsedMs int64            `json:"elapsed_ms"`
}

func resultJSON(cols []api.QueryColumn, rows []api.QueryRow, st api.QueryStatus) resultDoc {
	d := resultDoc{Columns: []columnJSON{}, Rows: []map[string]any{}, Missing: []missingJSON{}, Partial: st.Partial,
		Scanned: st.Scanned, Failovers: st.Failovers, Cached: st.Cached, ElapsedMs: millis(st.Elapsed)}
	for _, c := range cols {
		d.Columns = append(d.Columns, columnJSON{Name: c.Name, Type: c.Kind.String()})
	}
	for _, r := range rows {
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c.Name] = jsonValue(r[i])
		}
		d.Rows = append(d.Rows, m)
	}
	for _, m := range st.Missing {
		d.Missing = append(d.Missing, missingJSON{Fragment: m.Fragment, Chain: m.Chain, Node: idJSON(m.Instance), Holder: idJSON(m.Holder), Reason: m.Reason})
	}
	return d
}

type fragmentJSON struct {
	ID         int      `json:"id"`
	Chain      string   `json:"chain"`
	Node       jsonID   `json:"node"`
	Holder     jsonID   `json:"holder"`
	Alternates []jsonID `json:"alternates"`
	Text       string   `json:"text"`
}

type planDoc struct {
	Key         string         `json:"key"`
	Coordinator jsonID         `json:"coordinator"`
	Text        string         `json:"text"`
	Fragments   []fragmentJSON `json:"fragments"`
}

func planJSON(p api.QueryPlan) planDoc {
	d := planDoc{Key: p.Key, Coordinator: idJSON(p.Coordinator), Text: p.Text, Fragments: []fragmentJSON{}}
	for _, f := range p.Fragments {
		fj := fragmentJSON{ID: f.ID, Chain: f.Chain, Node: idJSON(f.Instance), Holder: idJSON(f.Holder), Alternates: []jsonID{}, Text: f.Text}
		for _, a := range f.Alternates {
			fj.Alternates = append(fj.Alternates, idJSON(a))
		}
		d.Fragments = append(d.Fragments, fj)
	}
	return d
}
