// Command deck is the operator cyberdeck for an encrypted mesh: a Bubble Tea
// TUI, a CLI and a mesh node in one binary. main only dispatches; every
// subcommand lives in package deck/cli.
package main

import (
	"os"

	"github.com/charmbracelet/x/term"

	"github.com/deck-mesh/deck/deck/cli"
	"github.com/deck-mesh/deck/demo"
)

func main() {
	// A `deck demo --procs` node is this binary re-executed: it runs its
	// node and exits here, before any CLI parsing.
	demo.RunMemberIfChild()
	os.Exit(cli.Main(os.Args[1:], cli.IO{
		In:    os.Stdin,
		Out:   os.Stdout,
		Err:   os.Stderr,
		IsTTY: term.IsTerminal(os.Stdin.Fd()),
	}))
}
