package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/deck-mesh/deck/deck"
)

// runTUI opens the deck on the cluster from --cluster / $DECK_CLUSTER /
// config.toml, through an embedded observer node.
func runTUI(cmd *cobra.Command, stdio IO) error {
	if !stdio.IsTTY {
		return fmt.Errorf("%w: the deck needs a terminal; try `deck status`", errNoTTY)
	}
	s, err := joinCluster(stdio, cmd, false)
	if err != nil {
		return err
	}
	defer s.Close()
	return deck.Run(cmd.Context(), s.client, deck.Options{Version: Version})
}
