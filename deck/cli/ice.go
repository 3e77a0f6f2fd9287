package cli

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
)

// proposalHeader starts an exported ICE proposal file: the signing payload
// in base64, then one signature line per operator who signed it.
const proposalHeader = "deck-ice-proposal-v1"

func iceCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ice VERB",
		Short: "Break-glass ICE verbs: simulate, sign (M-of-N), commit",
		Long: `ICE verbs go Proposal → Simulate → Commit. The simulation prints the blast
radius; the commit needs the cluster's ICE threshold of operator signatures
within 60 s of the proposal. With a threshold above 1:
  deck ice VERB … --sign-only --out p.ice      # proposer signs, writes the payload
  deck ice sign p.ice --identity bob            # a second operator prints a signature line
  deck ice commit p.ice --sig 'deck-sig:…'      # anyone commits`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, v := range api.ICEVerbs {
		cmd.AddCommand(iceVerbCmd(stdio, v))
	}
	cmd.AddCommand(iceSignCmd(stdio), iceCommitCmd(stdio))
	return cmd
}

func iceVerbCmd(stdio IO, verb api.Verb) *cobra.Command {
	var f actionFlags
	var signOnly bool
	var outFile string
	cmd := &cobra.Command{
		Use:   string(verb),
		Short: verbShort[verb],
		Long: verbShort[verb] + `.

ICE (break-glass) verbs bypass the usual safety rails and need the cluster's
ICE threshold of operator signatures within 60 s of the proposal. The console
joins, simulates the action and prints its blast radius. With threshold 1,
--yes (or typing YES) commits. With threshold 2 or more, --sign-only --out
FILE signs and writes the proposal; other operators co-sign it with
deck ice sign FILE, and deck ice commit FILE --sig LINE… commits it.`,
		Example: fmt.Sprintf("  %[1]s --preview\n  %[1]s --yes                        # ICE threshold 1\n  %[1]s --sign-only --out p.ice      # threshold 2 or more", exampleArgs(verb)),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if signOnly && outFile == "" {
				return usageErr("--sign-only needs --out FILE")
			}
			if !signOnly && outFile != "" {
				return usageErr("--out is for --sign-only")
			}
			if f.preview && signOnly {
				return usageErr("--preview signs nothing: drop --sign-only")
			}
			if signOnly && f.yes {
				return usageErr("--sign-only commits nothing: drop --yes")
			}
			s, a, err := joinForAction(cmd, stdio, &f, verb)
			if err != nil {
				return err
			}
			defer s.Close()
			cs := s.client.Snapshot()
			ctx := cmd.Context()
			prop, err := s.client.ICE().Propose(ctx, a)
			if err != nil {
				return err
			}
			sim, err := prop.Simulate(ctx)
			if err != nil {
				return err
			}
			threshold := s.client.ICE().Threshold()
			if !f.preview && !signOnly && threshold > 1 {
				return fmt.Errorf("%w: cluster %s needs %d operators' signatures for ICE: run with --sign-only --out FILE, have another operator run `deck ice sign FILE`, then `deck ice commit FILE --sig LINE`",
					api.ErrBelowThreshold, cs.Cluster, threshold)
			}
			if signOnly {
				// The gate is at commit time; the proposer still sees what
				// they sign.
				printPreview(stdio.Err, sim.BlastRadius(), namesOf(cs))
				f.yes = true
			}
			if err := confirm(stdio, out, f, sim.BlastRadius(), namesOf(cs)); err != nil {
				return err
			}
			if f.preview {
				return nil
			}
			sig, err := sim.Sign()
			if err != nil {
				return err
			}
			if signOnly {
				if err := writeProposal(outFile, sim.SigningPayload(), []api.Signature{sig}); err != nil {
					return err
				}
				return printProposalWritten(stdio, out, outFile, threshold, sim)
			}
			rcpt, err := sim.Commit(ctx, []api.Signature{sig})
			if err != nil {
				return err
			}
			return printReceipt(stdio.Out, out, rcpt, a, 1, s.client.Snapshot())
		},
	}
	f.register(cmd, verb)
	cmd.Flags().BoolVar(&signOnly, "sign-only", false, "sign and export the proposal for co-signers instead of committing")
	cmd.Flags().StringVar(&outFile, "out", "", "with --sign-only: the proposal file to write")
	return cmd
}

func printProposalWritten(stdio IO, out, file string, threshold int, sim api.SimulatedProposal) error {
	if out == OutputJSON {
		return writeJSON(stdio.Out, struct {
			File       string `json:"file"`
			Verb       string `json:"verb"`
			Signatures int    `json:"signatures"`
			Threshold  int    `json:"threshold"`
			ExpiresAt  string `json:"expires_at"`
		}{file, string(sim.Action().Verb), 1, threshold, isoTime(sim.ExpiresAt())})
	}
	fmt.Fprintf(stdio.Out, "wrote %s: signed by you, 1 of %d signatures; commit before %s (%s from now)\n",
		file, threshold, sim.ExpiresAt().UTC().Format(time.RFC3339), time.Until(sim.ExpiresAt()).Round(time.Second))
	if threshold > 1 {
		fmt.Fprintf(stdio.Out, "next: another operator runs `deck ice sign %s --identity NAME`, then\n      `deck ice commit %s --sig LINE` with the line it prints\n", file, file)
	} else {
		fmt.Fprintf(stdio.Out, "next: `deck ice commit %s`\n", file)
	}
	return nil
}

func iceSignCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "sign FILE",
		Short: "Co-sign an exported ICE proposal; prints a signature line",
		Long: `sign checks an exported ICE proposal against the cluster, prints its blast
radius on stderr and its signature line on stdout. Hand the line to whoever
commits: deck ice commit FILE --sig LINE.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, sigs, err := readProposal(args[0])
			if err != nil {
				return err
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			s, err := e.join(cmd, true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.mustSign(); err != nil {
				return err
			}
			sim, err := s.client.ICE().Load(cmd.Context(), payload)
			if err != nil {
				return err
			}
			printPreview(stdio.Err, sim.BlastRadius(), namesOf(s.client.Snapshot()))
			sig, err := sim.Sign()
			if err != nil {
				return err
			}
			for _, prev := range sigs {
				if prev.Operator == sig.Operator {
					fmt.Fprintf(stdio.Err, "deck: warning: %s already signed %s; a second signature by the same operator does not count\n",
						namesOf(s.client.Snapshot()).operator(sig.Operator), args[0])
				}
			}
			fmt.Fprintln(stdio.Out, command.FormatSignature(sig))
			return nil
		},
	}
}

func iceCommitCmd(stdio IO) *cobra.Command {
	var sigLines []string
	cmd := &cobra.Command{
		Use:   "commit FILE [--sig LINE]…",
		Short: "Commit an exported ICE proposal with its signatures",
		Long: `commit sends an exported ICE proposal with the signatures in FILE and every
--sig line to the cluster. Signatures count once per operator; the commit
needs the cluster's ICE threshold of them within 60 s of the proposal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			payload, sigs, err := readProposal(args[0])
			if err != nil {
				return err
			}
			for _, l := range sigLines {
				sig, err := command.ParseSignature(l)
				if err != nil {
					return fmt.Errorf("%w: --sig: %v", api.ErrInvalid, err)
				}
				sigs = append(sigs, sig)
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			s, err := e.join(cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			sim, err := s.client.ICE().Load(cmd.Context(), payload)
			if err != nil {
				return err
			}
			nm := namesOf(s.client.Snapshot())
			distinct := map[identity.NodeID]bool{}
			for _, sig := range sigs {
				if err := sim.Check(sig); err != nil {
					return fmt.Errorf("signature of %s: %w", nm.operator(sig.Operator), err)
				}
				distinct[sig.Operator] = true
			}
			if need := s.client.ICE().Threshold(); len(distinct) < need {
				signers := make([]string, 0, len(distinct))
				for id := range distinct {
					signers = append(signers, nm.operator(id))
				}
				slices.Sort(signers)
				return fmt.Errorf("%w: %s signed by %s; cluster %s needs %d different operators (signatures count once per operator)",
					api.ErrBelowThreshold, args[0], plural(len(distinct), "operator")+" ("+strings.Join(signers, ", ")+")",
					s.client.Cluster(), need)
			}
			rcpt, err := sim.Commit(cmd.Context(), sigs)
			if err != nil {
				return err
			}
			return printReceipt(stdio.Out, out, rcpt, sim.Action(), len(distinct), s.client.Snapshot())
		},
	}
	cmd.Flags().StringArrayVar(&sigLines, "sig", nil, "a co-signature line from `deck ice sign` (repeatable)")
	return cmd
}

func writeProposal(path string, payload []byte, sigs []api.Signature) error {
	var b strings.Builder
	b.WriteString(proposalHeader + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(payload) + "\n")
	for _, s := range sigs {
		b.WriteString(command.FormatSignature(s) + "\n")
	}
	return identity.WriteFileAtomic(path, []byte(b.String()), 0o600, false)
}

// maxProposalFileBytes bounds what readProposal reads.
const maxProposalFileBytes = 1 << 20

func readProposal(path string) ([]byte, []api.Signature, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: proposal: %v", api.ErrNotFound, err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxProposalFileBytes)
	var lines []string
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: proposal %s: %v", api.ErrInvalid, path, err)
	}
	if len(lines) < 2 || lines[0] != proposalHeader {
		return nil, nil, fmt.Errorf("%w: %s is not a deck ICE proposal", api.ErrInvalid, path)
	}
	payload, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: proposal payload: %v", api.ErrInvalid, err)
	}
	var sigs []api.Signature
	for _, l := range lines[2:] {
		s, err := command.ParseSignature(l)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: proposal signature: %v", api.ErrInvalid, err)
		}
		sigs = append(sigs, s)
	}
	return payload, sigs, nil
}
