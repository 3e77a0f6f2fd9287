package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
	"github.com/deck-mesh/deck/node/identity"
)

// Co-signing (M-of-N) is the same flow for ICE and for admin and registry
// events: the proposer signs and exports the signing payload with
// --sign-only --out FILE, other operators print signature lines with
// `deck GROUP sign FILE`, and anyone commits with `deck GROUP commit FILE
// --sig LINE…`. GROUP is "ice" or "admin"; a file made by one group is
// refused by the other, so nobody co-signs an ICE proposal believing it is
// routine.

// The proposal file format is node/api's (api.ProposalFile), shared with
// the TUI's export.

// signOnlyFlags are --sign-only and --out, shared by ICE verbs, admin verbs
// and the operator registry commands.
type signOnlyFlags struct {
	signOnly bool
	out      string
}

func (so *signOnlyFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&so.signOnly, "sign-only", false, "sign and export the proposal for co-signers instead of committing")
	cmd.Flags().StringVar(&so.out, "out", "", "with --sign-only: the proposal `file` to write (never overwritten)")
}

// check validates the combination before any join; an existing --out file
// is api.ErrExists (exit 4): a proposal others may be co-signing is never
// overwritten.
func (so *signOnlyFlags) check(f *actionFlags) error {
	switch {
	case so.signOnly && so.out == "":
		return usageErr("--sign-only needs --out FILE")
	case !so.signOnly && so.out != "":
		return usageErr("--out is for --sign-only")
	case f.preview && so.signOnly:
		return usageErr("--preview signs nothing: drop --sign-only")
	case so.signOnly && f.yes:
		return usageErr("--sign-only commits nothing: drop --yes")
	}
	if so.signOnly {
		if _, err := os.Lstat(so.out); err == nil {
			return fmt.Errorf("%w: %s: a proposal file is never overwritten (choose another --out or remove it)", api.ErrExists, so.out)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--out %s: %w", so.out, err)
		}
	}
	return nil
}

// belowThreshold is the refusal of a one-signature commit on a cluster that
// needs more, pointing at the co-signing flow.
func belowThreshold(group, cluster string, need int) error {
	what := "admin and registry commands"
	if group == "ice" {
		what = "ICE"
	}
	return fmt.Errorf("%w: cluster %s needs %d operators' signatures for %s: run with --sign-only --out FILE, have another operator run `deck %s sign FILE`, then `deck %s commit FILE --sig LINE`",
		api.ErrBelowThreshold, cluster, need, what, group, group)
}

// writeSignedProposal signs sim with the session's operator and writes the
// proposal file.
func writeSignedProposal(stdio IO, out, group, file string, threshold int, sim api.SimulatedProposal) error {
	sig, err := sim.Sign()
	if err != nil {
		return err
	}
	if err := writeProposal(file, group, sim.SigningPayload(), []api.Signature{sig}); err != nil {
		return err
	}
	return printProposalWritten(stdio, out, group, file, threshold, sim)
}

func printProposalWritten(stdio IO, out, group, file string, threshold int, sim api.SimulatedProposal) error {
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
		fmt.Fprintf(stdio.Out, "next: another operator runs `deck %s sign %s --identity NAME`, then\n      `deck %s commit %s --sig LINE` with the line it prints\n", group, file, group, file)
	} else {
		fmt.Fprintf(stdio.Out, "next: `deck %s commit %s`\n", group, file)
	}
	return nil
}

func proposalSignCmd(stdio IO, group string) *cobra.Command {
	long := `sign checks an exported ICE proposal against the cluster, prints its blast
radius on stderr and its signature line on stdout. Hand the line to whoever
commits: deck ice commit FILE --sig LINE.`
	short := "Co-sign an exported ICE proposal; prints a signature line"
	if group == "admin" {
		long = `sign checks an exported admin or registry proposal (deck admin VERB … or
deck operator add|remove … with --sign-only --out FILE) against the cluster,
prints its blast radius on stderr and its signature line on stdout. Hand the
line to whoever commits: deck admin commit FILE --sig LINE.`
		short = "Co-sign an exported admin or registry proposal; prints a signature line"
	}
	return &cobra.Command{
		Use:   "sign FILE",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, sigs, err := readProposal(args[0], group)
			if err != nil {
				return err
			}
			s, err := joinCluster(stdio, cmd, true)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.mustSign(); err != nil {
				return err
			}
			sim, err := s.client.LoadProposal(cmd.Context(), payload)
			if err != nil {
				return err
			}
			nm := namesOf(s.client.Snapshot())
			printPreview(stdio.Err, sim.BlastRadius(), nm)
			sig, err := sim.Sign()
			if err != nil {
				return err
			}
			for _, prev := range sigs {
				if prev.Operator == sig.Operator {
					fmt.Fprintf(stdio.Err, "deck: warning: %s already signed %s; a second signature by the same operator does not count\n",
						nm.operator(sig.Operator), args[0])
				}
			}
			fmt.Fprintln(stdio.Out, command.FormatSignature(sig))
			return nil
		},
	}
}

func proposalCommitCmd(stdio IO, group string) *cobra.Command {
	var sigLines []string
	long := `commit sends an exported ICE proposal with the signatures in FILE and every
--sig line to the cluster. Signatures count once per operator; the commit
needs the cluster's ICE threshold of them within 60 s of the proposal.`
	short := "Commit an exported ICE proposal with its signatures"
	if group == "admin" {
		long = `commit sends an exported admin or registry proposal with the signatures in
FILE and every --sig line to the cluster. Signatures count once per operator;
the commit needs the cluster's admin threshold of them within 60 s of the
proposal.`
		short = "Commit an exported admin or registry proposal with its signatures"
	}
	cmd := &cobra.Command{
		Use:   "commit FILE [--sig LINE]…",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			payload, sigs, err := readProposal(args[0], group)
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
			s, err := joinCluster(stdio, cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			sim, err := s.client.LoadProposal(cmd.Context(), payload)
			if err != nil {
				return err
			}
			nm := namesOf(s.client.Snapshot())
			distinct := map[identity.NodeID]bool{}
			// A rotation's new key signs too, but is not yet an operator:
			// it does not count towards the threshold (the fold's rule).
			var rotatedTo identity.NodeID
			if a := sim.Action(); a.Verb == api.VerbRotateOperator {
				rotatedTo = identity.IDFromPublicKey(a.OperatorKey)
			}
			for _, sig := range sigs {
				if err := sim.Check(sig); err != nil {
					return fmt.Errorf("signature of %s: %w", nm.operator(sig.Operator), err)
				}
				if sig.Operator != rotatedTo {
					distinct[sig.Operator] = true
				}
			}
			need := s.client.AdminThreshold()
			if group == "ice" {
				need = s.client.ICE().Threshold()
			}
			if len(distinct) < need {
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
			if errors.Is(err, api.ErrPreviewChanged) {
				return stalePreview(stdio, err, nm)
			}
			if errors.Is(err, api.ErrFrozen) {
				return fmt.Errorf("%w (admin commands wait until the freeze ends; `deck status` shows it, `deck ice thaw-cluster` lifts it)", err)
			}
			if err != nil {
				return err
			}
			return printReceipt(stdio.Out, out, rcpt, sim.Action(), len(distinct), s.client.Snapshot())
		},
	}
	cmd.Flags().StringArrayVar(&sigLines, "sig", nil, fmt.Sprintf("a co-signature line from `deck %s sign` (repeatable)", group))
	return cmd
}

// writeProposal writes a proposal file (node/api's codec, the one the TUI
// exports with), refusing to replace an existing one.
func writeProposal(path, group string, payload []byte, sigs []api.Signature) error {
	pf := api.ProposalFile{Payload: payload, Sigs: sigs}
	if pf.Group() != group {
		return fmt.Errorf("%w: %s payload written as a %s proposal", api.ErrInvalid, pf.Group(), group)
	}
	err := identity.WriteFileAtomic(path, pf.Marshal(), 0o600, true)
	if errors.Is(err, identity.ErrExists) {
		return fmt.Errorf("%w: %s: a proposal file is never overwritten", api.ErrExists, path)
	}
	return err
}

// readProposal reads a proposal file of group ("ice" or "admin"); a file of
// the other group is refused with the command that takes it.
func readProposal(path, group string) ([]byte, []api.Signature, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: proposal: %v", api.ErrNotFound, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, api.MaxProposalFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: proposal %s: %v", api.ErrInvalid, path, err)
	}
	pf, err := api.ParseProposalFile(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if fileGroup := pf.Group(); fileGroup != group {
		kind := "an admin"
		if fileGroup == "ice" {
			kind = "an ICE"
		}
		return nil, nil, usageErr("%s is %s proposal: co-sign and commit it with deck %s sign / deck %s commit", path, kind, fileGroup, fileGroup)
	}
	return pf.Payload, pf.Sigs, nil
}
