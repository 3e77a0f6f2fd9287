package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/blob"
	"github.com/deck-mesh/deck/node/identity"
	"github.com/deck-mesh/deck/widgets"
)

// blobWait bounds the blob commands that only ask (stat, ls, pin, unpin,
// rm, gc): a datafort that does not answer in time is left out.
const blobWait = 30 * time.Second

func blobCmd(stdio IO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blob",
		Short: "Content-addressed blobs on the mesh's datafort nodes (put, get, stat, ls, pin, unpin, replicas, rm, gc)",
		Long: `blob stores files on the datafort nodes (capability "datafort") of the mesh.
A blob's handle is its hash: the BLAKE3 of its manifest, 64 hex digits.
Chunks are verified on every read and write; a put returns once the
requested number of datafort nodes hold it, each fsynced.

put, pin, unpin, replicas and rm are signed with your operator key (--identity).`,
	}
	cmd.AddCommand(blobPutCmd(stdio), blobGetCmd(stdio), blobStatCmd(stdio), blobLsCmd(stdio),
		blobPinCmd(stdio, true), blobPinCmd(stdio, false), blobReplicasCmd(stdio), blobRmCmd(stdio), blobGCCmd(stdio))
	return cmd
}

// onBlob is the RunE of a blob command on one HASH: the hash parsed
// before anything else, then onBlobs.
func onBlob(stdio IO, sign bool, run func(ctx context.Context, cmd *cobra.Command, args []string, s *session, h api.BlobHash, b api.Blobs, out string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		h, err := parseBlobHash(args[0])
		if err != nil {
			return err
		}
		return onBlobs(stdio, sign, blobWait, func(ctx context.Context, cmd *cobra.Command, args []string, s *session, b api.Blobs, out string) error {
			return run(ctx, cmd, args, s, h, b, out)
		})(cmd, args)
	}
}

// onBlobs is the RunE of a blob command: --output checked, the mesh joined
// (signing when sign), a deadline of wait; run gets them all.
func onBlobs(stdio IO, sign bool, wait time.Duration, run func(ctx context.Context, cmd *cobra.Command, args []string, s *session, b api.Blobs, out string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		out, err := outputFormat(cmd)
		if err != nil {
			return err
		}
		s, b, err := blobSession(stdio, cmd, sign)
		if err != nil {
			return err
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), wait)
		defer cancel()
		return run(ctx, cmd, args, s, b, out)
	}
}

// blobSession joins the mesh for a blob command.
func blobSession(stdio IO, cmd *cobra.Command, sign bool) (*session, api.Blobs, error) {
	s, err := joinCluster(stdio, cmd, sign)
	if err != nil {
		return nil, nil, err
	}
	if sign {
		if err := s.mustSign(); err != nil {
			s.Close()
			return nil, nil, err
		}
	}
	return s, s.client.Blobs(), nil
}

func parseBlobHash(s string) (api.BlobHash, error) {
	h, err := blob.ParseHash(strings.TrimSpace(strings.ToLower(s)))
	if err != nil {
		return api.BlobHash{}, usageErr("%v", err)
	}
	return api.BlobHash(h), nil
}

func blobPutCmd(stdio IO) *cobra.Command {
	var replicas int
	var pin bool
	var name, parent string
	cmd := &cobra.Command{
		Use:   "put FILE",
		Short: "Store FILE (- for stdin) on the datafort nodes and print its hash",
		Long: `put stores FILE on --replicas datafort nodes (default 2) and prints the
blob's hash. It returns once that many hold it, each fsynced. --pin keeps it
from ever being shed or collected; --parent records the blob it was derived
from (its ancestry).`,
		Example: `  deck blob put model.bin --replicas 3 --pin
  tar c data | deck blob put - --name data.tar`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			o := api.BlobPutOptions{Replicas: replicas, Pin: pin, Name: name}
			if replicas < 0 || replicas > blob.MaxReplicas {
				return usageErr("--replicas %d: want 1..%d", replicas, blob.MaxReplicas)
			}
			if parent != "" {
				if o.Parent, err = parseBlobHash(parent); err != nil {
					return err
				}
			}
			var r io.Reader = stdio.In
			size := int64(-1)
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("%w: %v", api.ErrNotFound, err)
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					size = st.Size()
				}
				r = f
				if o.Name == "" {
					o.Name = filepath.Base(args[0])
				}
			}
			if len(o.Name) > blob.MaxNameBytes {
				return usageErr("--name is %d bytes, at most %d", len(o.Name), blob.MaxNameBytes)
			}
			s, b, err := blobSession(stdio, cmd, true)
			if err != nil {
				return err
			}
			defer s.Close()
			p := newProgress(stdio)
			defer p.done()
			o.Progress = func(phase string, done, total int64) {
				if phase == "store" {
					total = size
				}
				p.show(phase, done, total)
			}
			info, err := b.Put(cmd.Context(), r, o)
			p.done()
			if err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, blobDocOf(info))
			}
			fmt.Fprintln(stdio.Out, info.Hash)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&replicas, "replicas", blob.DefaultReplicas, "datafort `nodes` that hold it (1: one node, fsynced)")
	fl.BoolVar(&pin, "pin", false, "never shed or collect it")
	fl.StringVar(&name, "name", "", "a `name` for people (default the file's)")
	fl.StringVar(&parent, "parent", "", "the `hash` of the blob it was derived from")
	return cmd
}

func blobGetCmd(stdio IO) *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use:   "get HASH",
		Short: "Write a blob to stdout or --out FILE, verified chunk by chunk",
		Long: `get fetches the blob from the nearest holders, several chunks in flight,
each verified against its hash, and writes it in order to --out FILE (or
stdout). A holder that fails mid-way is left for another. (-o is the output
format everywhere, so the file is --out.)`,
		Example: `  deck blob get 3f2a…e1 --out model.bin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			h, err := parseBlobHash(args[0])
			if err != nil {
				return err
			}
			if out == OutputJSON && outFile == "" {
				return usageErr("-o json describes the blob: write its bytes with --out FILE")
			}
			s, b, err := blobSession(stdio, cmd, false)
			if err != nil {
				return err
			}
			defer s.Close()
			var w io.Writer = stdio.Out
			var f *os.File
			if outFile != "" {
				tmp := outFile + ".part"
				if f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return err
				}
				defer func() {
					f.Close()
					os.Remove(tmp)
				}()
				w = f
			}
			p := newProgress(stdio)
			defer p.done()
			info, err := b.Get(cmd.Context(), h, w, func(done, total int64) { p.show("get", done, total) })
			p.done()
			if err != nil {
				return err
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				if err := os.Rename(outFile+".part", outFile); err != nil {
					return err
				}
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, blobDocOf(info))
			}
			if outFile != "" {
				fmt.Fprintf(stdio.Err, "%s: %s, %s\n", outFile, humanBytes(info.Size), info.Hash.Short())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&outFile, "out", "", "write to `file` (written whole, then renamed into place)")
	return cmd
}

func blobStatCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "stat HASH",
		Short: "Show a blob: size, chunks, holders, heat, pins, ancestry",
		Args:  cobra.ExactArgs(1),
		RunE: onBlob(stdio, false, func(ctx context.Context, cmd *cobra.Command, args []string, s *session, h api.BlobHash, b api.Blobs, out string) error {
			info, err := b.Stat(ctx, h)
			if err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, blobDocOf(info))
			}
			nm := namesOf(s.client.Snapshot())
			w := stdio.Out
			fmt.Fprintf(w, "blob      %s\n", info.Hash)
			if info.Name != "" {
				fmt.Fprintf(w, "name      %s\n", info.Name)
			}
			fmt.Fprintf(w, "size      %s (%d bytes, %d chunks)\n", humanBytes(info.Size), info.Size, info.Chunks)
			fmt.Fprintf(w, "replicas  %d held / %d desired\n", len(info.Holders), info.Replicas)
			fmt.Fprintf(w, "holders   %s\n", nodeList(nm, info.Holders))
			if len(info.Fetching) > 0 {
				fmt.Fprintf(w, "fetching  %s\n", nodeList(nm, info.Fetching))
			}
			fmt.Fprintf(w, "heat      %.2f chunk reads/s\n", info.Heat)
			fmt.Fprintf(w, "pinned    %v\n", info.Pinned)
			if !info.Parent.IsZero() {
				fmt.Fprintf(w, "parent    %s\n", info.Parent)
			}
			if info.Operator != 0 {
				fmt.Fprintf(w, "intent    by %s at %s\n", nm.node(info.Operator), isoTime(info.IssuedAt))
			}
			return nil
		}),
	}
}

func blobLsCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the blobs every datafort node holds",
		Args:  cobra.NoArgs,
		RunE: onBlobs(stdio, false, blobWait, func(ctx context.Context, _ *cobra.Command, _ []string, _ *session, b api.Blobs, out string) error {
			list, err := b.List(ctx)
			if err != nil {
				return err
			}
			if out == OutputJSON {
				docs := make([]blobDoc, 0, len(list))
				for _, bi := range list {
					docs = append(docs, blobDocOf(bi))
				}
				return writeJSON(stdio.Out, docs)
			}
			fmt.Fprintf(stdio.Out, "%-12s  %10s  %5s  %6s  %3s  %-20s  %s\n", "BLOB", "SIZE", "HELD", "HEAT", "PIN", "NAME", "PARENT")
			for _, bi := range list {
				pin, parent := "", ""
				if bi.Pinned {
					pin = "yes"
				}
				if !bi.Parent.IsZero() {
					parent = bi.Parent.Short()
				}
				fmt.Fprintf(stdio.Out, "%-12s  %10s  %2d/%-2d  %6.2f  %3s  %-20s  %s\n", bi.Hash.Short(), humanBytes(bi.Size),
					len(bi.Holders), bi.Replicas, bi.Heat, pin, printable(bi.Name), parent)
			}
			return nil
		}),
	}
}

func blobPinCmd(stdio IO, pin bool) *cobra.Command {
	use, short, verb := "pin HASH", "Pin a blob: never shed, never collected (a signed intent; previewed, asks for YES)", api.VerbPinBlob
	if !pin {
		use, short, verb = "unpin HASH", "Unpin a blob (a signed intent; previewed, asks for YES)", api.VerbUnpinBlob
	}
	return blobIntentCmd(stdio, use, short, 1, func(h api.BlobHash, _ []string) (api.Action, error) {
		return api.Action{Verb: verb, Blob: h}, nil
	}, func(info api.BlobInfo) string {
		return fmt.Sprintf("%s pinned=%v (%d holders)", info.Hash, info.Pinned, len(info.Holders))
	})
}

func blobReplicasCmd(stdio IO) *cobra.Command {
	count := func(arg string) (int, error) {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > api.MaxBlobReplicas {
			return 0, usageErr("replicas %q: want a number 1..%d", arg, api.MaxBlobReplicas)
		}
		return n, nil
	}
	cmd := blobIntentCmd(stdio, "replicas HASH N",
		"Set how many datafort nodes hold a blob, 1..16 (a signed intent; previewed, asks for YES)", 2,
		func(h api.BlobHash, args []string) (api.Action, error) {
			n, err := count(args[1])
			return api.Action{Verb: api.VerbSetBlobReplicas, Blob: h, Replicas: n}, err
		}, func(info api.BlobInfo) string {
			return fmt.Sprintf("%s replicas=%d (%d holders now)", info.Hash, info.Replicas, len(info.Holders))
		})
	cmd.Example = "  deck blob replicas 7c083eaea355d917a251866d8dab0bb454a8af6e50c5cddd98366d727ab7201c 3 --preview\n" +
		"  deck blob replicas 7c083eaea355d917a251866d8dab0bb454a8af6e50c5cddd98366d727ab7201c 3 --yes"
	cmd.Args = func(c *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(2)(c, args); err != nil {
			return err
		}
		_, err := count(args[1]) // before joining the mesh
		return err
	}
	return cmd
}

// blobIntentCmd is a command signing one intent change on the blob its
// first argument names (pin, unpin, replicas) through the one action flow:
// the blast radius (which copies move, how many bytes) is previewed,
// --preview stops there, a terminal types YES unless --yes, and the commit
// is bound to the preview shown (api.Blobs.Commit). line says the outcome
// in text (JSON: the blob's document).
func blobIntentCmd(stdio IO, use, short string, nargs int, action func(api.BlobHash, []string) (api.Action, error),
	line func(api.BlobInfo) string) *cobra.Command {
	var f actionFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		PreRunE: func(*cobra.Command, []string) error {
			if f.preview && f.yes {
				return usageErr("--preview and --yes are exclusive: --preview only looks, --yes commits")
			}
			return nil
		},
		RunE: onBlob(stdio, true, func(ctx context.Context, cmd *cobra.Command, args []string, s *session, h api.BlobHash, b api.Blobs, out string) error {
			a, err := action(h, args)
			if err != nil {
				return err
			}
			br, err := s.client.Preview(ctx, a)
			if err != nil {
				return err
			}
			nm := namesOf(s.client.Snapshot())
			if err := confirm(stdio, out, f, br, nm); err != nil || f.preview {
				return err
			}
			info, err := b.Commit(ctx, br)
			if errors.Is(err, api.ErrPreviewChanged) {
				return stalePreview(stdio, err, nm)
			}
			if err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, blobDocOf(info))
			}
			fmt.Fprintln(stdio.Out, line(info))
			return nil
		}),
	}
	cmd.Flags().BoolVar(&f.preview, "preview", false, "print the blast radius and commit nothing")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "commit without the typed confirmation")
	return cmd
}

func blobRmCmd(stdio IO) *cobra.Command {
	var force, yes bool
	cmd := &cobra.Command{
		Use:   "rm HASH",
		Short: "Remove a blob from every datafort node (a signed intent; asks for YES)",
		Long: `rm signs a removal of the blob: every holder drops it and keeps the signed
removal for a week, so a replica that was away drops it too. A pinned blob
is removed only with --force. A terminal is asked to type YES; --yes skips
the question.`,
		Args: cobra.ExactArgs(1),
		RunE: onBlob(stdio, true, func(ctx context.Context, cmd *cobra.Command, args []string, s *session, h api.BlobHash, b api.Blobs, out string) error {
			info, err := b.Stat(ctx, h)
			if err != nil {
				return err
			}
			if info.Pinned && !force {
				return fmt.Errorf("%w: blob %s is pinned: unpin it first, or pass --force", api.ErrInvalid, h.Short())
			}
			if !yes {
				fmt.Fprintf(stdio.Err, "remove blob %s (%s, %s) from %d datafort nodes, for good\n", h, printable(info.Name), humanBytes(info.Size), len(info.Holders))
				if err := askYES(stdio, "pass --yes to remove"); err != nil {
					return err
				}
			}
			if err := b.Remove(ctx, h, force); err != nil {
				return err
			}
			if out == OutputJSON {
				return writeJSON(stdio.Out, map[string]any{"blob": h.String(), "removed": true, "holders": idsJSON(info.Holders)})
			}
			fmt.Fprintf(stdio.Out, "%s removed\n", h)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove a pinned blob too")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	return cmd
}

func blobGCCmd(stdio IO) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Ask every datafort node to collect chunks no blob references",
		Args:  cobra.NoArgs,
		RunE: onBlobs(stdio, false, blob.GCRequestTimeout+5*time.Second, func(ctx context.Context, _ *cobra.Command, _ []string, s *session, b api.Blobs, out string) error {
			reps, err := b.GC(ctx)
			if err != nil {
				return err
			}
			nm := namesOf(s.client.Snapshot())
			type gcDoc struct {
				Node            jsonID `json:"node"`
				ChunksKept      uint64 `json:"chunks_kept"`
				ChunksCollected uint64 `json:"chunks_collected"`
				BytesCollected  uint64 `json:"bytes_collected"`
				Error           string `json:"error,omitempty"`
			}
			docs := []gcDoc{}
			failed := 0
			for _, r := range reps {
				if r.Node == s.node.ID() {
					continue // this console's own (empty) store
				}
				docs = append(docs, gcDoc{idJSON(r.Node), r.ChunksKept, r.ChunksCollected, r.BytesCollected, r.Err})
				if r.Err != "" {
					failed++
				}
			}
			if out == OutputJSON {
				if err := writeJSON(stdio.Out, docs); err != nil {
					return err
				}
			} else {
				for _, d := range docs {
					if d.Error != "" {
						fmt.Fprintf(stdio.Out, "%-16s error: %s\n", nm.node(identity.NodeID(d.Node.ID)), d.Error)
						continue
					}
					fmt.Fprintf(stdio.Out, "%-16s collected %d chunks (%s), kept %d\n", nm.node(identity.NodeID(d.Node.ID)), d.ChunksCollected, humanBytes(d.BytesCollected), d.ChunksKept)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d datafort nodes did not collect", failed)
			}
			return nil
		}),
	}
}

// blobDoc is a blob in JSON: hashes as hex, ids as the house's id pairs,
// times ISO 8601.
type blobDoc struct {
	Hash     string   `json:"hash"`
	Name     string   `json:"name"`
	Size     uint64   `json:"size"`
	Chunks   int      `json:"chunks"`
	Replicas int      `json:"replicas"`
	Held     int      `json:"held"`
	Holders  []jsonID `json:"holders"`
	Fetching []jsonID `json:"fetching"`
	Heat     float64  `json:"heat"`
	Pinned   bool     `json:"pinned"`
	Parent   string   `json:"parent,omitempty"`
	Operator *jsonID  `json:"operator,omitempty"`
	IssuedAt string   `json:"issued_at,omitempty"`
	StoredAt string   `json:"stored_at,omitempty"`
}

func blobDocOf(bi api.BlobInfo) blobDoc {
	d := blobDoc{Hash: bi.Hash.String(), Name: bi.Name, Size: bi.Size, Chunks: bi.Chunks, Replicas: bi.Replicas,
		Held: len(bi.Holders), Holders: idsJSON(bi.Holders), Fetching: idsJSON(bi.Fetching), Heat: bi.Heat,
		Pinned: bi.Pinned, Operator: optID(bi.Operator), IssuedAt: isoTime(bi.IssuedAt), StoredAt: isoTime(bi.StoredAt)}
	if !bi.Parent.IsZero() {
		d.Parent = bi.Parent.String()
	}
	return d
}

func idsJSON(ids []identity.NodeID) []jsonID {
	out := make([]jsonID, 0, len(ids))
	for _, id := range ids {
		out = append(out, idJSON(id))
	}
	return out
}

func nodeList(nm names, ids []identity.NodeID) string {
	if len(ids) == 0 {
		return "none"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = nm.node(id)
	}
	return strings.Join(parts, ", ")
}

// humanBytes is n in binary units.
func humanBytes(n uint64) string { return widgets.Bytes(n) }

// progress draws one line on stderr while a transfer runs, only when
// stderr is a terminal, at most ten times a second.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	last  time.Time
	drawn bool
	start time.Time
}

func newProgress(stdio IO) *progress {
	p := &progress{w: stdio.Err, start: time.Now()}
	if f, ok := stdio.Err.(*os.File); ok && term.IsTerminal(f.Fd()) {
		p.on = true
	}
	return p
}

func (p *progress) show(phase string, done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done != total {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	line := fmt.Sprintf("%-9s %s", phase, humanBytes(uint64(max(done, 0))))
	if total > 0 {
		line += fmt.Sprintf(" / %s (%3.0f%%)", humanBytes(uint64(total)), 100*float64(done)/float64(total))
	}
	line += fmt.Sprintf("  %s/s", humanBytes(uint64(rate)))
	fmt.Fprintf(p.w, "\r\x1b[2K%s", line)
	p.drawn = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[2K")
		p.drawn = false
	}
}
