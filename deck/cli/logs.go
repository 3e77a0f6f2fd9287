package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/chain"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// logsQuiet ends a non-follow `deck logs` once no record arrived for this
// long: the backfill from every node has been delivered.
const logsQuiet = 1500 * time.Millisecond

// logsAnswerWait is how long a non-follow `deck logs` keeps waiting, past a
// quiet logsQuiet, for a node that has sent nothing yet: a lost lease
// request is sent again at the subscription's renewal, so a node that has
// matching records answers by then. A node with none costs this wait.
const logsAnswerWait = chain.DefaultLeaseRenewInterval + logsQuiet

// logsMaxWait bounds a non-follow `deck logs`: a node that keeps pushing
// (or a slow one) must not keep it from printing.
const logsMaxWait = 10 * time.Second

// maxHeldLogs bounds how many records a non-follow `deck logs` sorts at
// once; beyond it, it prints what it holds and starts a new batch.
const maxHeldLogs = 100_000

// logsOptions are the flags of `deck logs`.
type logsOptions struct {
	follow                        bool
	level, nodeRef, daemon, match string
}

func logsCmd(stdio IO) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Read daemon and node logs from every node (--follow to stream)",
		Long: `logs asks every node for its log records. Without --follow it prints each
node's most recent records (the last 256 per node, filtered) in time order
and exits; with --follow it keeps printing new ones until Ctrl-C.
-o json prints one JSON object per line.`,
		Example: `  deck logs --level warn
  deck logs --node n2 --daemon inference-1 --follow
  deck logs --match "restarted by operator" -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLogs(cmd, stdio, o) },
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.follow, "follow", "f", false, "keep streaming new records")
	fl.StringVar(&o.level, "level", "", "minimum `level`: trace|debug|info|warn|error")
	fl.StringVar(&o.nodeRef, "node", "", "only this `node` (label, id or unique id prefix)")
	fl.StringVar(&o.daemon, "daemon", "", "only this `daemon` id")
	fl.StringVar(&o.match, "match", "", "only records containing `TEXT` (case-insensitive)")
	addListenFlag(fl)
	return cmd
}

func runLogs(cmd *cobra.Command, stdio IO, o logsOptions) error {
	out, err := outputFormat(cmd)
	if err != nil {
		return err
	}
	f := api.LogFilter{Daemon: o.daemon, Match: o.match}
	if o.level != "" {
		l, ok := api.ParseLogLevel(o.level)
		if !ok {
			return usageErr("--level %q: want trace, debug, info, warn or error", o.level)
		}
		f.MinLevel = l
	}
	s, err := joinCluster(stdio, cmd, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if o.nodeRef != "" {
		if f.Node, err = resolveNode(s.client.Snapshot(), o.nodeRef); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	st, err := s.client.SubscribeLogs(ctx, f)
	if err != nil {
		return err
	}
	defer st.Close()
	lp := &logPrinter{stdio: stdio, out: out, nm: namesOf(s.client.Snapshot())}
	return lp.run(ctx, st, expectedLogSources(s.client.Snapshot(), f.Node), o.follow)
}

// logPrinter prints one `deck logs` stream. Without --follow the records
// are collected until every node's backfill has arrived (no record for
// logsQuiet) and printed in time order; with it, each is printed as it
// arrives.
type logPrinter struct {
	stdio IO
	out   string
	nm    names
	held  []api.LogRecord
}

func (lp *logPrinter) flush() error {
	slices.SortStableFunc(lp.held, func(a, b api.LogRecord) int { return a.At.Compare(b.At) })
	for _, rec := range lp.held {
		if err := printLog(lp.stdio.Out, lp.out, rec, lp.nm); err != nil {
			return err
		}
	}
	lp.held = nil
	return nil
}

// run reads st until it ends, ctx is done, or (without follow) the
// backfill is complete. silent holds the nodes expected to answer that
// have not yet.
func (lp *logPrinter) run(ctx context.Context, st *api.Stream[api.LogRecord], silent map[identity.NodeID]bool, follow bool) error {
	// Each node sends its recent records and then keeps streaming new
	// ones. Without --follow only the records from before the
	// subscription count, so a busy cluster cannot keep the command
	// running.
	started := time.Now()
	var stop <-chan time.Time
	if !follow {
		t := time.NewTimer(logsMaxWait)
		defer t.Stop()
		stop = t.C
	}
	quiet := time.NewTimer(logsQuiet)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return lp.flush()
		case <-stop:
			return lp.flush()
		case <-quiet.C:
			if follow {
				continue
			}
			if len(silent) > 0 && time.Since(started) < logsAnswerWait {
				quiet.Reset(logsQuiet)
				continue
			}
			if err := lp.flush(); err != nil {
				return err
			}
			if d := st.Dropped(); d > 0 {
				fmt.Fprintf(lp.stdio.Err, "deck: %d records dropped (reader too slow)\n", d)
			}
			return nil
		case rec, ok := <-st.C():
			if !ok {
				return lp.flush()
			}
			delete(silent, rec.Node)
			if follow {
				if err := printLog(lp.stdio.Out, lp.out, rec, lp.nm); err != nil {
					return err
				}
			} else {
				if rec.At.After(started) {
					continue // live, not backfill
				}
				lp.held = append(lp.held, rec)
				if len(lp.held) >= maxHeldLogs {
					if err := lp.flush(); err != nil {
						return err
					}
				}
			}
			quiet.Reset(logsQuiet)
		}
	}
}

func printLog(w io.Writer, out string, r api.LogRecord, nm names) error {
	if out == OutputJSON {
		enc := json.NewEncoder(w) // one object per line: greppable, streamable
		return enc.Encode(struct {
			Seq    uint64 `json:"seq"`
			At     string `json:"at"`
			Node   jsonID `json:"node"`
			Label  string `json:"label"`
			Daemon string `json:"daemon,omitempty"`
			Level  string `json:"level"`
			Text   string `json:"text"`
		}{r.Seq, isoTime(r.At), idJSON(r.Node), nm.nodes[r.Node], r.Daemon, r.Level.String(), r.Text})
	}
	daemon := r.Daemon
	if daemon == "" {
		daemon = "-"
	}
	_, err := fmt.Fprintf(w, "%s %-5s %-8s %-16s %s\n", r.At.Local().Format("15:04:05.000"), r.Level, nm.node(r.Node), daemon, r.Text)
	return err
}

// expectedLogSources is the set of nodes a `deck logs` should hear from:
// the one --node names, else every live hosting node in the view.
func expectedLogSources(cs *snapshot.ClusterSnapshot, only identity.NodeID) map[identity.NodeID]bool {
	out := map[identity.NodeID]bool{}
	if only != 0 {
		out[only] = true
		return out
	}
	for _, nv := range cs.Nodes {
		if !nv.Observer && nv.Health != snapshot.Unreachable && !nv.Stale {
			out[nv.ID] = true
		}
	}
	return out
}
