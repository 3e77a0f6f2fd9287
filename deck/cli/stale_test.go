package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deck-mesh/deck/node/api"
	"github.com/deck-mesh/deck/node/command"
)

// TestStalePreviewPrintsTheNewOne: a commit refused because the blast
// radius changed prints what changed and the new preview on stderr, and
// exits 8 (refused); other errors pass through untouched.
func TestStalePreviewPrintsTheNewOne(t *testing.T) {
	cs := fixtureCluster()
	n1, n2, n3 := cs.Nodes[0].ID, cs.Nodes[1].ID, cs.Nodes[2].ID
	drain := api.Action{Verb: api.VerbDrain, Node: n1, Duration: time.Minute}
	confirmed := api.BlastRadius{Action: drain, Nodes: []api.NodeID{n1, n2},
		Replicas: []api.ReplicaMove{{Chain: "inference", From: n1, To: n2}}}
	now := api.BlastRadius{Action: drain, Nodes: []api.NodeID{n1, n3},
		Replicas: []api.ReplicaMove{{Chain: "inference", From: n1, To: n3}}}
	refusal := command.PreviewChanged(&confirmed, &now)
	if refusal == nil {
		t.Fatal("a replica moving elsewhere is not a change")
	}
	var stderr bytes.Buffer
	stdio := IO{Out: &bytes.Buffer{}, Err: &stderr}
	nm := namesOf(cs)
	err := stalePreview(stdio, refusal, nm)
	if !errors.Is(err, api.ErrPreviewChanged) || api.ExitCode(err) != api.ExitRefused {
		t.Fatalf("error %v (exit %d), want ErrPreviewChanged, exit %d", err, api.ExitCode(err), api.ExitRefused)
	}
	var want bytes.Buffer
	printPreview(&want, now, nm)
	got := stderr.String()
	if !strings.Contains(got, "nothing was committed") || !strings.Contains(got, "no longer moves") ||
		!strings.Contains(got, "now moves") || !strings.HasSuffix(got, want.String()) {
		t.Fatalf("stderr does not name the changes and end with the new preview:\n%s", got)
	}
	other := errors.New("boom")
	if err := stalePreview(stdio, other, nm); err != other {
		t.Fatalf("another error came back as %v", err)
	}
}
