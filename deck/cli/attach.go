package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/deck-mesh/deck/deck"
	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/config"
)

// openDeck joins the cluster the deck starts on and builds the deck's
// options: its version, the picker's targets and the attach that joins
// another cluster, and the session, which the deck owns from here on (it
// closes it when it attaches elsewhere, or when it stops).
func openDeck(cmd *cobra.Command, stdio IO) (api.Client, deck.Options, error) {
	e, err := loadEnv(stdio)
	if err != nil {
		return nil, deck.Options{}, err
	}
	s, err := e.join(cmd, false)
	if err != nil {
		return nil, deck.Options{}, err
	}
	a := &attacher{base: cmd}
	at := deck.Target{Cluster: s.client.Cluster(), Path: s.path, Identity: a.identity(deck.Target{})}
	if abs, err := filepath.Abs(at.Path); err == nil {
		at.Path = abs
	}
	if err := recordRecent(e.dirs, at); err != nil {
		fmt.Fprintf(stdio.Err, "deck: warning: %v\n", err)
	}
	return s.client, deck.Options{
		Version: Version, Targets: a.targets, Attach: a.attach,
		Attached: at, Closer: sessionCloser{s},
	}, nil
}

// sessionCloser closes a session's console node for the deck.
type sessionCloser struct{ s *session }

func (c sessionCloser) Close() error { c.s.Close(); return nil }

// attacher joins other clusters for a running deck. Each attach is the
// deck's own start run again in-process — `deck --cluster FILE [--identity
// NAME]` with the flags the deck started with as defaults — so it takes
// the same path: cluster file checks, the operator key, the console's
// certificate, the wait for a peer, the ledger sync.
type attacher struct {
	base *cobra.Command
}

// identity is the identity t attaches as, if one is named: t's own, else
// the --identity the deck started with.
func (a *attacher) identity(t deck.Target) string {
	if t.Identity != "" {
		return t.Identity
	}
	id, _ := a.base.Flags().GetString("identity")
	return id
}

// targets lists the bookmarks, then the recent clusters not bookmarked
// (as the same identity), each with its file's cluster name or problem. A
// file that does not parse is reported with what could be listed.
func (a *attacher) targets() ([]deck.Target, error) {
	e, err := loadEnv(IO{})
	if err != nil {
		return nil, err
	}
	insecure, _ := insecurePermissions(a.base)
	var (
		out  []deck.Target
		errs []error
		seen = map[[2]string]bool{}
	)
	bm, err := config.LoadBookmarks(e.dirs.BookmarksPath())
	if err != nil {
		errs = append(errs, err)
		bm = &config.Bookmarks{}
	}
	for _, b := range bm.List() {
		t := deck.Target{Bookmark: b.Name, Path: b.Cluster, Identity: b.Identity}
		t.Cluster, t.Problem = clusterInfo(b.Cluster, insecure)
		seen[[2]string{t.Path, t.Identity}] = true
		out = append(out, t)
	}
	if p := e.dirs.RecentPath(); p != "" {
		rc, err := config.LoadRecent(p)
		if err != nil {
			errs = append(errs, err)
			rc = &config.Recent{}
		}
		for _, r := range rc.List() {
			if seen[[2]string{r.Path, r.Identity}] {
				continue
			}
			t := deck.Target{Path: r.Path, Identity: r.Identity}
			if name, problem := clusterInfo(r.Path, insecure); problem == "" {
				t.Cluster = name
			} else {
				t.Cluster, t.Problem = r.Cluster, problem
			}
			out = append(out, t)
		}
	}
	return out, errors.Join(errs...)
}

// attach joins t's cluster as a new console node; the join's warnings
// (which would otherwise go to stderr, under the deck's screen) come back
// as notes.
func (a *attacher) attach(ctx context.Context, t deck.Target) (deck.Attachment, error) {
	var warnings bytes.Buffer
	e, err := loadEnv(IO{Err: &warnings})
	if err != nil {
		return deck.Attachment{}, err
	}
	cmd, err := a.command(ctx, t)
	if err != nil {
		return deck.Attachment{}, err
	}
	s, err := e.join(cmd, false)
	if err != nil {
		return deck.Attachment{}, err
	}
	var notes []string
	for _, l := range strings.Split(strings.TrimSpace(warnings.String()), "\n") {
		if l = strings.TrimPrefix(l, "deck: "); l != "" {
			notes = append(notes, l)
		}
	}
	if err := recordRecent(e.dirs, deck.Target{Cluster: s.client.Cluster(), Path: t.Path, Identity: a.identity(t)}); err != nil {
		notes = append(notes, err.Error())
	}
	return deck.Attachment{Client: s.client, Closer: sessionCloser{s}, Notes: notes}, nil
}

// command is the deck's own command for t: every flag the deck started
// with, --cluster set to t's file and --identity to t's identity, under
// ctx.
func (a *attacher) command(ctx context.Context, t deck.Target) (*cobra.Command, error) {
	cmd := &cobra.Command{Use: a.base.Use}
	cmd.SetContext(ctx)
	fs := cmd.Flags()
	a.base.Flags().VisitAll(func(f *pflag.Flag) {
		fs.AddFlag(&pflag.Flag{
			Name: f.Name, Shorthand: f.Shorthand, Usage: f.Usage, DefValue: f.DefValue, Changed: f.Changed,
			Value: &copiedValue{typ: f.Value.Type(), val: f.Value.String()},
		})
	})
	if err := fs.Set("cluster", t.Path); err != nil {
		return nil, err
	}
	if t.Identity != "" {
		if err := fs.Set("identity", t.Identity); err != nil {
			return nil, err
		}
	}
	return cmd, nil
}

// copiedValue is a flag's value copied as text: pflag's getters read every
// type back from String, so the copy answers them as the original would.
type copiedValue struct{ typ, val string }

func (v *copiedValue) String() string     { return v.val }
func (v *copiedValue) Set(s string) error { v.val = s; return nil }
func (v *copiedValue) Type() string       { return v.typ }

// recordRecent puts t first in recent.toml (when there is a state dir).
func recordRecent(dirs config.Dirs, t deck.Target) error {
	p := dirs.RecentPath()
	if p == "" {
		return nil
	}
	path, err := filepath.Abs(t.Path)
	if err != nil {
		return err
	}
	name := t.Cluster
	if config.ValidateClusterName(name) != nil {
		name = ""
	}
	return config.RecordRecent(p, config.RecentCluster{Path: path, Cluster: name, Identity: t.Identity})
}
