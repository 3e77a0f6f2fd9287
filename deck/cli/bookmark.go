package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
)

func bookmarkCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bookmark",
		Short: "Name cluster files for the deck's cluster picker (:)",
		Long: `Bookmarks name cluster files, each optionally with the operator identity to
attach as. In the deck, : lists them, then the clusters it attached to lately,
and attaches the running deck to the one picked. They live in
$XDG_CONFIG_HOME/deck/bookmarks.toml (mode 0600); the recent clusters in
$XDG_STATE_HOME/deck/recent.toml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(bookmarkAddCmd(stdio), bookmarkLsCmd(stdio), bookmarkRmCmd(stdio))
	return cmd
}

// oneName is cobra.ExactArgs(1) exiting 2, with the name checked.
func oneName(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErr("want one bookmark NAME, got %d arguments", len(args))
	}
	if err := config.ValidateBookmarkName(args[0]); err != nil {
		return err
	}
	return nil
}

func bookmarkAddCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME --cluster FILE [--identity NAME]",
		Short: "Bookmark a cluster file (exit 4 if NAME exists)",
		Long: `Bookmark a cluster file as NAME. The file must load as a cluster file (it is
checked now, not when the deck attaches). With --identity the deck attaches as
that operator identity, whose key must be on this machine; without, it uses
its own (--identity, $DECK_IDENTITY or config.toml).`,
		Args: oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			path := e.dirs.BookmarksPath()
			// Read first: a file that does not parse is reported and never
			// overwritten.
			bm, err := config.LoadBookmarks(path)
			if err != nil {
				return err
			}
			if _, ok := bm.Get(args[0]); ok {
				return fmt.Errorf("%w: bookmark %q (remove it first with `deck bookmark rm %s`)", api.ErrExists, args[0], args[0])
			}
			c, clusterPath, err := e.clusterFile(cmd)
			if err != nil {
				return err
			}
			if clusterPath, err = filepath.Abs(clusterPath); err != nil {
				return err
			}
			ident, _ := cmd.Flags().GetString("identity")
			if ident != "" {
				if err := e.hasIdentity(ident, clusterPath); err != nil {
					return err
				}
			}
			if err := bm.Add(config.Bookmark{Name: args[0], Cluster: clusterPath, Identity: ident}); err != nil {
				return err
			}
			if err := config.SaveBookmarks(path, bm); err != nil {
				return err
			}
			as := ""
			if ident != "" {
				as = " as " + ident
			}
			fmt.Fprintf(stdio.Out, "bookmarked %s: cluster %s (%s)%s\n", args[0], c.Name, clusterPath, as)
			return nil
		},
	}
}

// hasIdentity checks that an operator key named name loads from the stores
// an attach to clusterPath searches.
func (e *env) hasIdentity(name, clusterPath string) error {
	if err := config.ValidateOperatorName(name); err != nil {
		return fmt.Errorf("--identity: %w", err)
	}
	var lastErr error
	for _, s := range e.operatorStores(clusterPath) {
		_, err := s.Load(name)
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if errors.Is(lastErr, api.ErrNotFound) {
		return fmt.Errorf("%w: operator identity %q: no key in %s or beside the cluster file (create one with `deck identity generate %s`)",
			api.ErrNotFound, name, e.dirs.Operators().Dir, name)
	}
	return lastErr
}

// bookmarkRow is one bookmark as `deck bookmark ls` shows it.
type bookmarkRow struct {
	Name     string `json:"name"`
	Cluster  string `json:"cluster"` // from the file; "" when it does not load
	Path     string `json:"path"`
	Identity string `json:"identity"` // "" for the deck's own
	Problem  string `json:"problem,omitempty"`
}

func bookmarkLsCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List bookmarks with each file's cluster name (or what is wrong with it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			insecure, err := insecurePermissions(cmd)
			if err != nil {
				return err
			}
			bm, err := config.LoadBookmarks(e.dirs.BookmarksPath())
			if err != nil {
				return err
			}
			rows := []bookmarkRow{}
			for _, b := range bm.List() {
				name, problem := clusterInfo(b.Cluster, insecure)
				rows = append(rows, bookmarkRow{Name: b.Name, Cluster: name, Path: b.Cluster, Identity: b.Identity, Problem: problem})
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(stdio.Out, "no bookmarks (add one with `deck bookmark add NAME --cluster FILE`)")
				return nil
			}
			tw := tabwriter.NewWriter(stdio.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCLUSTER\tIDENTITY\tFILE")
			for _, r := range rows {
				cluster, id := r.Cluster, r.Identity
				if r.Problem != "" {
					cluster = "✗ " + r.Problem
				}
				if id == "" {
					id = "default"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, cluster, id, r.Path)
			}
			return tw.Flush()
		},
	}
}

func bookmarkRmCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a bookmark (exit 3 if there is none)",
		Args:  oneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadEnv(stdio)
			if err != nil {
				return err
			}
			path := e.dirs.BookmarksPath()
			bm, err := config.LoadBookmarks(path)
			if err != nil {
				return err
			}
			if err := bm.Remove(args[0]); err != nil {
				return err
			}
			if err := config.SaveBookmarks(path, bm); err != nil {
				return err
			}
			fmt.Fprintf(stdio.Out, "removed bookmark %s\n", args[0])
			return nil
		},
	}
}

// clusterInfo reads a bookmarked cluster file for its name, or says in a
// few words why it cannot be used ("missing", "not a cluster file", …).
func clusterInfo(path string, insecure bool) (name, problem string) {
	c, _, err := config.LoadClusterWith(path, config.LoadOptions{InsecurePermissions: insecure})
	switch {
	case err == nil:
		return c.Name, ""
	case errors.Is(err, api.ErrNotFound):
		return "", "missing"
	case errors.Is(err, config.ErrUnprotectedClusterFile):
		return "", "every user can read it"
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, os.ErrPermission):
		return "", "unreadable"
	case errors.Is(err, api.ErrInvalid):
		return "", "not a cluster file"
	}
	return "", "unreadable"
}
