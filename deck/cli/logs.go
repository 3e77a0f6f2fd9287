package cli

import (
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

func logsCmd(stdio IO) *cobra.Command {
	var follow bool
	var level, nodeRef, daemon, match string
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			f := api.LogFilter{Daemon: daemon, Match: match}
			if level != "" {
				l, ok := api.ParseLogLevel(level)
				if !ok {
					return usageErr("--level %q: want trace, debug, info, warn or error", level)
				}
				f.MinLevel = l
			}
			s, err := joinCluster(stdio, cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			if nodeRef != "" {
				if f.Node, err = resolveNode(s.client.Snapshot(), nodeRef); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			st, err := s.client.SubscribeLogs(ctx, f)
			if err != nil {
				return err
			}
			defer st.Close()
			nm := namesOf(s.client.Snapshot())
			silent := expectedLogSources(s.client.Snapshot(), f.Node)
			// Without --follow the records are collected until every node's
			// backfill has arrived (no record for logsQuiet) and printed in
			// time order; with it, each is printed as it arrives.
			var held []api.LogRecord
			flush := func() error {
				slices.SortStableFunc(held, func(a, b api.LogRecord) int { return a.At.Compare(b.At) })
				for _, rec := range held {
					if err := printLog(stdio.Out, out, rec, nm); err != nil {
						return err
					}
				}
				held = nil
				return nil
			}
			// Each node sends its recent records and then keeps streaming
			// new ones. Without --follow only the records from before the
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
					return flush()
				case <-stop:
					return flush()
				case <-quiet.C:
					if !follow && len(silent) > 0 && time.Since(started) < logsAnswerWait {
						quiet.Reset(logsQuiet)
						continue
					}
					if !follow {
						if err := flush(); err != nil {
							return err
						}
						if d := st.Dropped(); d > 0 {
							fmt.Fprintf(stdio.Err, "deck: %d records dropped (reader too slow)\n", d)
						}
						return nil
					}
				case rec, ok := <-st.C():
					if !ok {
						return flush()
					}
					delete(silent, rec.Node)
					if !follow {
						if rec.At.After(started) {
							continue // live, not backfill
						}
						held = append(held, rec)
						if len(held) >= maxHeldLogs {
							if err := flush(); err != nil {
								return err
							}
						}
					} else if err := printLog(stdio.Out, out, rec, nm); err != nil {
						return err
					}
					if !quiet.Stop() {
						select {
						case <-quiet.C:
						default:
						}
					}
					quiet.Reset(logsQuiet)
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep streaming new records")
	fl.StringVar(&level, "level", "", "minimum `level`: trace|debug|info|warn|error")
	fl.StringVar(&nodeRef, "node", "", "only this `node` (label, id or unique id prefix)")
	fl.StringVar(&daemon, "daemon", "", "only this `daemon` id")
	fl.StringVar(&match, "match", "", "only records containing `TEXT` (case-insensitive)")
	return cmd
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
