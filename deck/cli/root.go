// Package cli is the deck command line: the cobra command tree, flag parsing,
// output formatting (pretty and JSON), the typed-YES confirmation gate and the
// mapping of errors to the exit codes of DESIGN §7. cmd/deck only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
)

// Version is the deck version, stamped by main.
var Version = "0.1.0-dev"

// exitError carries an explicit exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks an invalid-argument error (exit 2).
func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", api.ErrInvalid, fmt.Sprintf(format, args...))
}

// IO bundles the process streams so tests can drive the CLI.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	// IsTTY reports whether In is an interactive terminal (for the YES gate).
	IsTTY bool
}

// Main runs the deck CLI with args and returns the process exit code.
// SIGINT and SIGTERM cancel the command.
func Main(args []string, stdio IO) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, stdio)
}

// MainContext is Main under ctx instead of the process signals (tests, and
// hosts that run commands on behalf of someone else).
func MainContext(ctx context.Context, args []string, stdio IO) int {
	root := NewRoot(stdio)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return api.ExitOK
	}
	fmt.Fprintf(stdio.Err, "deck: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isFlagError(err) {
		return api.ExitInvalid
	}
	return api.ExitCode(err)
}

// flagErr wraps cobra's flag-parsing errors so they exit 2.
type flagErr struct{ error }

func isFlagError(err error) bool {
	var fe flagErr
	return errors.As(err, &fe)
}

// NewRoot builds the whole command tree.
func NewRoot(stdio IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "deck",
		Short: "Operator cyberdeck for an encrypted mesh",
		Long: `deck is a terminal console for an encrypted mesh and a mesh node in one binary.

Without a subcommand it opens the TUI attached to the cluster named by
--cluster, $DECK_CLUSTER or the default in config.toml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTUI(cmd, stdio)
		},
	}
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagErr{err} })
	root.PersistentFlags().String("cluster", "", "cluster `file` (default $DECK_CLUSTER, then config.toml)")
	root.PersistentFlags().StringP("output", "o", OutputPretty, "output `format`: pretty|json")
	root.PersistentFlags().String("identity", "", "operator identity `name` (default $DECK_IDENTITY, then config.toml)")
	root.PersistentFlags().Bool("insecure-permissions", false, "load a cluster file every user can read (default $DECK_INSECURE_PERMISSIONS)")
	root.CompletionOptions.DisableDefaultCmd = true
	addListenFlag(root.Flags())

	root.AddCommand(
		versionCmd(stdio),
		demoCmd(stdio),
		nodeCmd(stdio),
		statusCmd(stdio),
		adminCmd(stdio),
		iceCmd(stdio),
		auditCmd(stdio),
		logsCmd(stdio),
		identityCmd(stdio),
		operatorCmd(stdio),
		serveCmd(stdio),
		bookmarkCmd(stdio),
		blobCmd(stdio),
		queryCmd(stdio),
		chainCmd(stdio),
		aggregatorCmd(stdio),
	)
	return root
}

func versionCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the deck version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, map[string]string{"version": Version})
			}
			fmt.Fprintf(stdio.Out, "deck %s\n", Version)
			return nil
		},
	}
}

func outputFormat(cmd *cobra.Command) (string, error) {
	o, _ := cmd.Flags().GetString("output")
	switch o {
	case OutputPretty, OutputJSON:
		return o, nil
	}
	return "", usageErr("--output must be pretty or json, not %q", o)
}
