package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
)

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
	cmd.AddCommand(proposalSignCmd(stdio, "ice"), proposalCommitCmd(stdio, "ice"))
	addListenFlag(cmd.PersistentFlags())
	return cmd
}

func iceVerbCmd(stdio IO, verb api.Verb) *cobra.Command {
	var f actionFlags
	var so signOnlyFlags
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
			if err := so.check(&f); err != nil {
				return err
			}
			s, a, err := joinForAction(cmd, stdio, &f, verb)
			if err != nil {
				return err
			}
			defer s.Close()
			cs := s.client.Snapshot()
			nm := namesOf(cs)
			ctx := cmd.Context()
			if f.preview {
				// A preview needs no operator key: project without
				// proposing (a proposal binds its signer).
				br, err := s.client.Preview(ctx, a)
				if err != nil {
					return err
				}
				for _, l := range cs.Lockouts {
					if l.Verb == string(verb) && l.Target == a.Target() && l.Until.After(time.Now()) {
						br.Warnings = append(br.Warnings, fmt.Sprintf("ICE %s on %s is locked out for %s (cooldown after the last commit): a commit now is refused",
							verb, a.Target(), time.Until(l.Until).Round(time.Second)))
					}
				}
				return confirm(stdio, out, f, br, nm)
			}
			prop, err := s.client.ICE().Propose(ctx, a)
			if err != nil {
				return err
			}
			sim, err := prop.Simulate(ctx)
			if err != nil {
				return err
			}
			threshold := s.client.ICE().Threshold()
			if !so.signOnly && threshold > 1 {
				return belowThreshold("ice", cs.Cluster, threshold)
			}
			if so.signOnly {
				// The gate is at commit time; the proposer still sees what
				// they sign.
				printPreview(stdio.Err, sim.BlastRadius(), nm)
				return writeSignedProposal(stdio, out, "ice", so.out, threshold, sim)
			}
			if err := confirm(stdio, out, f, sim.BlastRadius(), nm); err != nil {
				return err
			}
			sig, err := sim.Sign()
			if err != nil {
				return err
			}
			rcpt, err := sim.Commit(ctx, []api.Signature{sig})
			if err != nil {
				return err
			}
			return printReceipt(stdio.Out, out, rcpt, a, 1, s.client.Snapshot())
		},
	}
	f.register(cmd, verb)
	so.register(cmd)
	return cmd
}
