package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/deck"
)

// runTUI opens the deck on the cluster from --cluster / $DECK_CLUSTER /
// config.toml, through an embedded observer node; `:` attaches it to
// another (attach.go).
func runTUI(cmd *cobra.Command, stdio IO) error {
	if !stdio.IsTTY {
		return fmt.Errorf("%w: the deck needs a terminal; try `deck status`", errNoTTY)
	}
	client, opts, err := openDeck(cmd, stdio)
	if err != nil {
		return err
	}
	return deck.Run(cmd.Context(), client, opts)
}
