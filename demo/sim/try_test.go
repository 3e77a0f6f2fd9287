package sim

import (
	"os"
	"strconv"
	"testing"
)

func TestTry(t *testing.T) {
	if os.Getenv("SIM_TRY") == "" {
		t.Skip()
	}
	rep, err := Run(t.Context(), Options{Nodes: envInt("SIM_N", 16), Subnets: envInt("SIM_K", 4), Latency: DefaultLinkLatency}, 0, os.Stderr)
	rep.Print(os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}
