package cli

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/node/snapshot"
)

// actionFlags are the parameters shared by admin and ICE verbs.
type actionFlags struct {
	node, daemon, chain, peer, migration, reason string
	chains                                       []string
	drainFor, deadline, ttl                      time.Duration
	preview, yes                                 bool
}

// verbParams says which flags a verb takes, for help and validation.
var verbParams = map[api.Verb][]string{
	api.VerbDrain:               {"node", "drain-for"},
	api.VerbEnterMaintenance:    {"node", "deadline"},
	api.VerbExitMaintenance:     {"node"},
	api.VerbCordon:              {"node"},
	api.VerbUncordon:            {"node"},
	api.VerbDropReplicas:        {"node", "chains"},
	api.VerbInvalidatePlacement: {"node"},
	api.VerbRestartAllDaemons:   {"node"},
	api.VerbClearAvoidList:      {"node"},
	api.VerbRestartDaemon:       {"daemon"},
	api.VerbFreezeCluster:       {"reason", "ttl"},
	api.VerbThawCluster:         {},
	api.VerbFlushAvoidLists:     {},
	api.VerbForceEvictReplica:   {"chain", "peer"},
	api.VerbForceRestartDaemon:  {"daemon"},
	api.VerbForceCutover:        {"chain", "peer"},
	api.VerbKillMigration:       {"migration"},
	api.VerbForceDrain:          {"node"},
	api.VerbAdmitNode:           {},
	api.VerbRevokeNode:          {},
}

var verbShort = map[api.Verb]string{
	api.VerbDrain:               "Drain a node's daemons and replicas for a while (--drain-for)",
	api.VerbEnterMaintenance:    "Drain a node and put it in maintenance before --deadline",
	api.VerbExitMaintenance:     "Bring a node back from maintenance through recovery",
	api.VerbCordon:              "Stop new placements on a node",
	api.VerbUncordon:            "Allow placements on a cordoned node again",
	api.VerbDropReplicas:        "Drop a node's chain replicas (--chains, default all)",
	api.VerbInvalidatePlacement: "Recompute a node's assignments from scratch",
	api.VerbRestartAllDaemons:   "Restart every daemon on a node",
	api.VerbClearAvoidList:      "Clear a node's avoid list",
	api.VerbRestartDaemon:       "Restart one daemon",
	api.VerbFreezeCluster:       "ICE: freeze every move in the cluster for --ttl (5s..30m)",
	api.VerbThawCluster:         "ICE: lift a cluster freeze",
	api.VerbFlushAvoidLists:     "ICE: clear every node's avoid list",
	api.VerbForceEvictReplica:   "ICE: evict --chain's replica from --peer",
	api.VerbForceRestartDaemon:  "ICE: restart a daemon even through crash-loop backoff",
	api.VerbForceCutover:        "ICE: make --peer the leader of --chain",
	api.VerbKillMigration:       "ICE: abort a migration",
	api.VerbForceDrain:          "ICE: drain a node bypassing the drain rate limit",
}

func (f *actionFlags) register(cmd *cobra.Command, verb api.Verb) {
	fl := cmd.Flags()
	for _, p := range verbParams[verb] {
		switch p {
		case "node":
			fl.StringVar(&f.node, "node", "", "target `node`: label, id (0x… or decimal) or unique id prefix")
		case "drain-for":
			fl.DurationVar(&f.drainFor, "drain-for", 10*time.Minute, "how long the drain may take")
		case "deadline":
			fl.DurationVar(&f.deadline, "deadline", 10*time.Minute, "time allowed to finish draining")
		case "chains":
			fl.StringSliceVar(&f.chains, "chains", nil, "`chains` to drop, comma-separated (default: all the node holds)")
		case "daemon":
			fl.StringVar(&f.daemon, "daemon", "", "`daemon` id, e.g. inference-1 (see deck status)")
		case "reason":
			fl.StringVar(&f.reason, "reason", "", "why, shown on every console's freeze banner (required)")
		case "ttl":
			fl.DurationVar(&f.ttl, "ttl", 5*time.Minute, "freeze duration, 5s..30m")
		case "chain":
			fl.StringVar(&f.chain, "chain", "", "`chain` name, e.g. inference")
		case "peer":
			if verb == api.VerbForceCutover {
				fl.StringVar(&f.peer, "peer", "", "the `node` that becomes the chain's leader (label or id)")
			} else {
				fl.StringVar(&f.peer, "peer", "", "the `node` whose replica is evicted (label or id)")
			}
		case "migration":
			fl.StringVar(&f.migration, "migration", "", "migration id")
		}
	}
	fl.BoolVar(&f.preview, "preview", false, "print the blast radius and commit nothing")
	fl.BoolVar(&f.yes, "yes", false, "commit without the typed confirmation")
}

// check validates the flags before the console joins the mesh, so a typo
// costs no round trip.
func (f *actionFlags) check(verb api.Verb) error {
	if f.preview && f.yes {
		return usageErr("--preview and --yes are exclusive: --preview only looks, --yes commits")
	}
	for _, p := range verbParams[verb] {
		missing := ""
		switch p {
		case "node":
			if strings.TrimSpace(f.node) == "" {
				missing = "--node"
			}
		case "peer":
			if strings.TrimSpace(f.peer) == "" {
				missing = "--peer"
			}
		case "daemon":
			if f.daemon == "" {
				missing = "--daemon"
			}
		case "chain":
			if f.chain == "" {
				missing = "--chain"
			}
		case "migration":
			if f.migration == "" {
				missing = "--migration"
			}
		case "reason":
			if strings.TrimSpace(f.reason) == "" {
				return usageErr("--reason is required: every console shows it on the freeze banner")
			}
		case "drain-for":
			if f.drainFor <= 0 {
				return usageErr("--drain-for must be positive")
			}
		case "deadline":
			if f.deadline <= 0 {
				return usageErr("--deadline must be positive")
			}
		case "ttl":
			if f.ttl < command.MinFreezeTTL || f.ttl > command.MaxFreezeTTL {
				return usageErr("--ttl %v: a freeze lasts %v to %v", f.ttl, command.MinFreezeTTL, command.MaxFreezeTTL)
			}
		}
		if missing != "" {
			return usageErr("%s is required (see deck %s %s --help)", missing, verbGroup(verb), verb)
		}
	}
	return nil
}

func verbGroup(v api.Verb) string {
	if v.IsICE() {
		return "ice"
	}
	return "admin"
}

// action builds the api.Action from checked flags, resolving node
// references in the view.
func (f *actionFlags) action(verb api.Verb, cs *snapshot.ClusterSnapshot) (api.Action, error) {
	if err := f.check(verb); err != nil {
		return api.Action{}, err
	}
	a := api.Action{Verb: verb, Daemon: f.daemon, Chain: f.chain, Chains: f.chains, Migration: f.migration, Reason: f.reason}
	for _, p := range verbParams[verb] {
		var err error
		switch p {
		case "node":
			a.Node, err = resolveNode(cs, f.node)
		case "peer":
			a.Peer, err = resolveNode(cs, f.peer)
		case "drain-for":
			a.Duration = f.drainFor
		case "deadline":
			a.Duration = f.deadline
		case "ttl":
			a.Duration = f.ttl
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

// exampleArgs are sample parameters for a verb's help.
func exampleArgs(verb api.Verb) string {
	sample := map[string]string{
		"node": "--node n2", "drain-for": "--drain-for 15m", "deadline": "--deadline 30m", "chains": "--chains inference",
		"daemon": "--daemon inference-1", "reason": `--reason "bad deploy"`, "ttl": "--ttl 10m", "chain": "--chain inference",
		"peer": "--peer n3", "migration": "--migration MIGRATION-ID",
	}
	var parts []string
	for _, p := range verbParams[verb] {
		parts = append(parts, sample[p])
	}
	return strings.Join(append([]string{"deck", verbGroup(verb), string(verb)}, parts...), " ")
}

func adminCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin VERB",
		Short: "Signed admin verbs: drain, cordon, maintenance …",
		Long: `Each admin verb is a signed event on the cluster's admin chain, verified and
applied by every node. --preview prints the blast radius and commits nothing;
--yes commits; with neither, a terminal asks you to type YES (anything else
refuses, exit 8) and a non-terminal exits 8. When the cluster's admin
threshold is above 1, an event needs that many operators' signatures:
  deck admin VERB … --sign-only --out p.adm     # proposer signs, writes the payload
  deck admin sign p.adm --identity bob           # a second operator prints a signature line
  deck admin commit p.adm --sig 'deck-sig:…'     # anyone commits, within 60 s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, v := range api.AdminVerbs {
		cmd.AddCommand(adminVerbCmd(stdio, v))
	}
	cmd.AddCommand(proposalSignCmd(stdio, "admin"), proposalCommitCmd(stdio, "admin"))
	addListenFlag(cmd.PersistentFlags())
	return cmd
}

func adminVerbCmd(stdio IO, verb api.Verb) *cobra.Command {
	var f actionFlags
	var so signOnlyFlags
	cmd := &cobra.Command{
		Use:   string(verb),
		Short: verbShort[verb],
		Long: verbShort[verb] + `.

The console joins the cluster, computes the blast radius (nodes, replicas and
daemons affected, expected drain time, warnings) and commits a signed event
that every node applies. --preview prints the blast radius and commits
nothing; without --yes a terminal asks you to type YES. Needs an operator
identity registered in the cluster (--identity NAME or $DECK_IDENTITY). With
an admin threshold above 1, --sign-only --out FILE signs and writes the
proposal for co-signers (deck admin sign, deck admin commit).`,
		Example: fmt.Sprintf("  %[1]s --preview   # look first\n  %[1]s             # shows the preview, asks you to type YES\n  %[1]s --yes       # no question (scripts)\n  %[1]s --sign-only --out p.adm   # admin threshold 2 or more", exampleArgs(verb)),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if err := so.check(&f); err != nil {
				return err
			}
			s, a, err := joinForAction(cmd, stdio, &f, verb)
			if err != nil {
				return err
			}
			defer s.Close()
			return runAdminAction(cmd, stdio, out, s, a, f, so, nil)
		},
	}
	f.register(cmd, verb)
	so.register(cmd)
	return cmd
}

// runAdminAction previews a (an admin or registry action), applies the
// commit gate and then signs and exports it (--sign-only) or commits it:
// through commit when given (the Client's registry calls), else bound to
// the preview printed (Admin().Prepare, sign, commit): when the projection
// recomputed at commit moves anything differently, nothing is committed and
// the new preview is printed (stalePreview, exit 8). A one-signature commit
// on a cluster whose admin threshold is above 1 is refused before anything
// is signed.
func runAdminAction(cmd *cobra.Command, stdio IO, out string, s *session, a api.Action, f actionFlags, so signOnlyFlags,
	commit func(context.Context) (api.Receipt, error)) error {
	ctx := cmd.Context()
	cs := s.client.Snapshot()
	nm := namesOf(cs)
	br, err := s.client.Preview(ctx, a)
	if err != nil {
		return err
	}
	threshold := s.client.AdminThreshold()
	if !f.preview && !so.signOnly && threshold > 1 {
		return belowThreshold("admin", cs.Cluster, threshold)
	}
	if so.signOnly {
		printPreview(stdio.Err, br, nm)
		sim, err := s.client.Admin().Prepare(ctx, br)
		if err != nil {
			return stalePreview(stdio, err, nm)
		}
		return writeSignedProposal(stdio, out, "admin", so.out, threshold, sim)
	}
	if err := confirm(stdio, out, f, br, nm); err != nil {
		return err
	}
	if f.preview {
		return nil
	}
	if commit == nil {
		commit = func(ctx context.Context) (api.Receipt, error) {
			sim, err := s.client.Admin().Prepare(ctx, br)
			if err != nil {
				return api.Receipt{}, err
			}
			sig, err := sim.Sign()
			if err != nil {
				return api.Receipt{}, err
			}
			return sim.Commit(ctx, []api.Signature{sig})
		}
	}
	rcpt, err := commit(ctx)
	if errors.Is(err, api.ErrPreviewChanged) {
		return stalePreview(stdio, err, nm)
	}
	if errors.Is(err, api.ErrFrozen) {
		return fmt.Errorf("%w (admin commands wait until the freeze ends; `deck status` shows it, `deck ice thaw-cluster` lifts it)", err)
	}
	if err != nil {
		return err
	}
	return printReceipt(stdio.Out, out, rcpt, a, 1, s.client.Snapshot())
}

// confirmPrompt is what a terminal is asked before a commit.
const confirmPrompt = "Type YES to confirm: "

// stalePreview reports a commit refused because the blast radius changed
// since it was confirmed: what moves differently, then the new preview, on
// stderr. The error keeps api.ErrPreviewChanged, so the exit code is 8
// (refused, DESIGN §7): the confirmation given does not hold for what would
// now happen, exactly as if it had been refused, and running the command
// again asks about the new preview (a script's --yes is its confirmation:
// it too must not stand for a projection it never saw). Any other error
// passes through.
func stalePreview(stdio IO, err error, nm names) error {
	var pc *api.PreviewChangedError
	if !errors.As(err, &pc) {
		return err
	}
	fmt.Fprintln(stdio.Err, "deck: the blast radius changed since it was confirmed; nothing was committed:")
	for _, c := range pc.Changes {
		fmt.Fprintln(stdio.Err, "  · "+c)
	}
	fmt.Fprintln(stdio.Err, "the blast radius now:")
	printPreview(stdio.Err, pc.Preview, nm)
	return fmt.Errorf("%w: nothing committed; run the command again (or propose again with --sign-only) to confirm the new preview", api.ErrPreviewChanged)
}

// confirm prints the preview and applies the commit gate: --preview stops
// after printing; --yes passes; a terminal must type YES; anything else is
// api.ErrRefused (exit 8).
func confirm(stdio IO, out string, f actionFlags, br api.BlastRadius, nm names) error {
	if f.preview || !f.yes {
		w := stdio.Out
		if !f.preview {
			w = stdio.Err // stdout stays clean for the receipt
		}
		if out == OutputJSON && f.preview {
			if err := writeJSON(w, previewJSON(br)); err != nil {
				return err
			}
		} else {
			printPreview(w, br, nm)
		}
	}
	if f.preview || f.yes {
		return nil
	}
	return askYES(stdio, "pass --yes to commit or --preview to only look")
}

// askYES is the commit gate's question: a terminal must type YES; without
// one (hint says what to pass instead) or with any other answer it is
// api.ErrRefused (exit 8).
func askYES(stdio IO, hint string) error {
	if !stdio.IsTTY {
		return fmt.Errorf("%w: stdin is not a terminal, so nobody can type YES: %s", api.ErrRefused, hint)
	}
	fmt.Fprint(stdio.Err, confirmPrompt)
	line, err := bufio.NewReader(stdio.In).ReadString('\n')
	if !strings.HasSuffix(line, "\n") {
		fmt.Fprintln(stdio.Err) // end of input: keep the error off the prompt line
	}
	if err != nil && err != io.EOF {
		return fmt.Errorf("%w: %v", api.ErrRefused, err)
	}
	if got := strings.TrimSpace(line); got != "YES" {
		if got == "" {
			return fmt.Errorf("%w: nothing committed (type YES in capitals to commit)", api.ErrRefused)
		}
		return fmt.Errorf("%w: you typed %q, not YES; nothing committed", api.ErrRefused, got)
	}
	return nil
}

type previewDoc struct {
	Verb            string    `json:"verb"`
	Target          string    `json:"target"`
	ICE             bool      `json:"ice"`
	AffectedNodes   []jsonID  `json:"affected_nodes"`
	ReplicaMoves    []moveDoc `json:"replica_moves"`
	AffectedDaemons []string  `json:"affected_daemons"`
	Restarted       []string  `json:"restarted"`
	Migrated        []moveDoc `json:"migrated"`
	LeaderMoves     []moveDoc `json:"leader_moves"`
	HotNodes        []hotDoc  `json:"hot_nodes"`
	BlobReplicas    int       `json:"blob_replicas,omitempty"` // blob replicas moving off datafort nodes
	BlobBytes       uint64    `json:"blob_bytes,omitempty"`
	DrainTimeMs     int64     `json:"drain_time_ms"`
	StabilityBefore float64   `json:"stability_before"`
	StabilityAfter  float64   `json:"stability_after"`
	Warnings        []string  `json:"warnings"`
	Hash            string    `json:"hash"`
}

type moveDoc struct {
	Chain  string  `json:"chain,omitempty"`
	Daemon string  `json:"daemon,omitempty"`
	From   jsonID  `json:"from"`
	To     *jsonID `json:"to"`
}

type hotDoc struct {
	Node      jsonID  `json:"node"`
	Projected float64 `json:"projected"`
}

func optID(id identity.NodeID) *jsonID {
	if id == 0 {
		return nil
	}
	j := idJSON(id)
	return &j
}

func previewJSON(br api.BlastRadius) previewDoc {
	d := previewDoc{Verb: string(br.Action.Verb), Target: br.Action.Target(), ICE: br.Action.Verb.IsICE(),
		AffectedNodes: []jsonID{}, ReplicaMoves: []moveDoc{}, AffectedDaemons: append([]string{}, br.Daemons...),
		Restarted: append([]string{}, br.Restarted...), Migrated: []moveDoc{}, LeaderMoves: []moveDoc{}, HotNodes: []hotDoc{},
		DrainTimeMs: millis(br.DrainTime), StabilityBefore: br.StabilityBefore, StabilityAfter: br.StabilityAfter,
		Warnings: append([]string{}, br.Warnings...), Hash: hex.EncodeToString(br.Hash[:]),
		BlobReplicas: br.BlobReplicas, BlobBytes: br.BlobBytes}
	for _, n := range br.Nodes {
		d.AffectedNodes = append(d.AffectedNodes, idJSON(n))
	}
	for _, m := range br.Replicas {
		d.ReplicaMoves = append(d.ReplicaMoves, moveDoc{Chain: m.Chain, From: idJSON(m.From), To: optID(m.To)})
	}
	for _, m := range br.Migrated {
		d.Migrated = append(d.Migrated, moveDoc{Daemon: m.Daemon, From: idJSON(m.From), To: optID(m.To)})
	}
	for _, m := range br.Leaders {
		d.LeaderMoves = append(d.LeaderMoves, moveDoc{Chain: m.Chain, From: idJSON(m.From), To: optID(m.To)})
	}
	for _, h := range br.HotNodes {
		d.HotNodes = append(d.HotNodes, hotDoc{Node: idJSON(h.Node), Projected: h.Projected})
	}
	return d
}

func printPreview(w io.Writer, br api.BlastRadius, nm names) {
	kind := "admin"
	if br.Action.Verb.IsICE() {
		kind = "ICE"
	}
	fmt.Fprintf(w, "%s %s on %s\n", kind, br.Action.Verb, nm.describe(br.Action))
	fmt.Fprintf(w, "Blast radius: %s, %s move, %s affected.\n", plural(len(br.Nodes), "node"),
		plural(len(br.Replicas), "replica"), plural(len(br.Daemons), "daemon"))
	for _, m := range br.Replicas {
		to := "nowhere (lost)"
		if m.To != 0 {
			to = nm.node(m.To)
		}
		fmt.Fprintf(w, "  replica  %-16s %s → %s\n", m.Chain, nm.node(m.From), to)
	}
	for _, m := range br.Migrated {
		to := "nowhere (unplaced)"
		if m.To != 0 {
			to = nm.node(m.To)
		}
		fmt.Fprintf(w, "  migrate  %-16s %s → %s\n", m.Daemon, nm.node(m.From), to)
	}
	for _, m := range br.Leaders {
		to := "no leader"
		if m.To != 0 {
			to = nm.node(m.To)
		}
		fmt.Fprintf(w, "  leader   %-16s %s → %s\n", m.Chain, nm.node(m.From), to)
	}
	for _, r := range br.Restarted {
		fmt.Fprintf(w, "  restart  %s\n", r)
	}
	for _, h := range br.HotNodes {
		fmt.Fprintf(w, "  hot      %-16s projected saturation %.0f%%\n", nm.node(h.Node), h.Projected*100)
	}
	if br.BlobReplicas > 0 || br.BlobBytes > 0 {
		fmt.Fprintf(w, "  blobs    %s, %s move off datafort nodes\n", plural(br.BlobReplicas, "blob replica"), humanBytes(br.BlobBytes))
	}
	fmt.Fprintf(w, "Expected drain time %s · placement stability %.0f%% → %.0f%%\n",
		br.DrainTime.Round(time.Second), br.StabilityBefore*100, br.StabilityAfter*100)
	for _, wn := range br.Warnings {
		fmt.Fprintf(w, "  ! %s\n", nm.target(wn))
	}
}

type receiptDoc struct {
	EventID     string `json:"event_id"`
	Verb        string `json:"verb"`
	Target      string `json:"target"`
	ICE         bool   `json:"ice"`
	Operator    jsonID `json:"operator"`
	Signatures  int    `json:"signatures"`
	CommittedAt string `json:"committed_at"`
	Seq         uint64 `json:"seq"`
}

// printReceipt reports a committed event; sigs is how many operator
// signatures it carries.
func printReceipt(w io.Writer, out string, r api.Receipt, a api.Action, sigs int, cs *snapshot.ClusterSnapshot) error {
	if out == OutputJSON {
		return writeJSON(w, receiptDoc{EventID: r.EventID, Verb: string(r.Verb), Target: r.Target, ICE: r.Verb.IsICE(),
			Operator: idJSON(r.Operator), Signatures: sigs, CommittedAt: isoTime(r.CommittedAt), Seq: r.Seq})
	}
	nm := namesOf(cs)
	kind := "admin"
	if r.Verb.IsICE() {
		kind = "ICE"
	}
	fmt.Fprintf(w, "committed %s %s on %s\n  event %s · by %s", kind, r.Verb, nm.describe(a), r.EventID, nm.operator(r.Operator))
	if sigs > 1 {
		fmt.Fprintf(w, " · %d signatures", sigs)
	}
	fmt.Fprintf(w, " · %s\n", r.CommittedAt.UTC().Format(time.RFC3339))
	return nil
}

// joinForAction is the common start of every admin and ICE verb: check the
// flags before paying for a join, join (with a signing operator unless only
// previewing), and build the action against the joined view.
func joinForAction(cmd *cobra.Command, stdio IO, f *actionFlags, verb api.Verb) (*session, api.Action, error) {
	if err := f.check(verb); err != nil {
		return nil, api.Action{}, err
	}
	e, err := loadEnv(stdio)
	if err != nil {
		return nil, api.Action{}, err
	}
	s, err := e.join(cmd, !f.preview)
	if err != nil {
		return nil, api.Action{}, err
	}
	if !f.preview {
		if err := s.mustSign(); err != nil {
			s.Close()
			return nil, api.Action{}, err
		}
	}
	a, err := f.action(verb, s.client.Snapshot())
	if err != nil {
		s.Close()
		return nil, api.Action{}, err
	}
	return s, a, nil
}
