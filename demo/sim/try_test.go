package sim

import (
	"os"
	"testing"
)

func TestTry(t *testing.T) {
	if os.Getenv("SIM_TRY") == "" {
		t.Skip()
	}
	rep, err := Run(t.Context(), Options{Nodes: 16, Subnets: 4, Latency: DefaultLinkLatency}, 0, os.Stderr)
	rep.Print(os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
}
