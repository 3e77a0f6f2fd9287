package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite golden files")

// allCommands walks the tree depth first.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, s := range c.Commands() {
		out = append(out, allCommands(s)...)
	}
	return out
}

// TestHelpGolden pins every subcommand's --help so wording cannot drift
// unnoticed.
func TestHelpGolden(t *testing.T) {
	root := NewRoot(IO{})
	for _, c := range allCommands(root) {
		path := strings.Fields(c.CommandPath())[1:]
		name := "deck"
		if len(path) > 0 {
			name = "deck_" + strings.Join(path, "_")
		}
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(append(path, "--help"), IO{In: strings.NewReader(""), Out: &out, Err: &errb})
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			golden := filepath.Join("testdata", "help", name+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./deck/cli -run TestHelpGolden -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("help drifted from %s:\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
			}
		})
	}
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"status", "--no-such-flag"},
		{"version", "--output", "yaml"},
		{"demo", "--nodes", "1", "--headless"},
		{"demo", "--topology", "torus", "--headless"},
		{"demo", "--ice-threshold", "3", "--headless"},
		{"node", "init"},
		{"admin", "drain", "--drain-for", "soon"},
	} {
		var out, errb bytes.Buffer
		code := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}
