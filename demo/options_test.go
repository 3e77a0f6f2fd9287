package demo

import (
	"errors"
	"testing"

	"github.com/deck-mesh/deck/node/api"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		want Options // checked fields after a nil error
		err  bool
	}{
		{name: "zero value takes the defaults", in: Options{},
			want: Options{Nodes: DefaultNodes, Topology: TopologyMesh, ICEThreshold: 1}},
		{name: "minimum nodes", in: Options{Nodes: MinNodes}, want: Options{Nodes: MinNodes, Topology: TopologyMesh, ICEThreshold: 1}},
		{name: "maximum nodes", in: Options{Nodes: MaxNodes}, want: Options{Nodes: MaxNodes, Topology: TopologyMesh, ICEThreshold: 1}},
		{name: "one node is not a mesh", in: Options{Nodes: 1}, err: true},
		{name: "too many nodes", in: Options{Nodes: MaxNodes + 1}, err: true},
		{name: "negative nodes", in: Options{Nodes: -3}, err: true},
		{name: "ring", in: Options{Topology: TopologyRing}, want: Options{Nodes: DefaultNodes, Topology: TopologyRing, ICEThreshold: 1}},
		{name: "random keeps its seed", in: Options{Topology: TopologyRandom, Seed: 42},
			want: Options{Nodes: DefaultNodes, Topology: TopologyRandom, Seed: 42, ICEThreshold: 1}},
		{name: "unknown topology", in: Options{Topology: "star"}, err: true},
		{name: "topology is case sensitive", in: Options{Topology: "Mesh"}, err: true},
		{name: "two-operator ICE", in: Options{ICEThreshold: 2}, want: Options{Nodes: DefaultNodes, Topology: TopologyMesh, ICEThreshold: 2}},
		{name: "ICE above the two demo operators", in: Options{ICEThreshold: 3}, err: true},
		{name: "negative ICE", in: Options{ICEThreshold: -1}, err: true},
		{name: "state dir and version are kept", in: Options{StateDir: "/tmp/x", Version: "v1"},
			want: Options{Nodes: DefaultNodes, Topology: TopologyMesh, ICEThreshold: 1, StateDir: "/tmp/x", Version: "v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.in
			err := o.Validate()
			if tt.err {
				if !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("Validate(%+v) = %v, want an error wrapping api.ErrInvalid", tt.in, err)
				}
				if api.ExitCode(err) != api.ExitInvalid {
					t.Errorf("exit code %d, want %d", api.ExitCode(err), api.ExitInvalid)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate(%+v) = %v", tt.in, err)
			}
			if o.Logf == nil {
				t.Error("Logf left nil")
			}
			if o.Nodes != tt.want.Nodes || o.Topology != tt.want.Topology || o.Seed != tt.want.Seed ||
				o.ICEThreshold != tt.want.ICEThreshold || o.StateDir != tt.want.StateDir || o.Version != tt.want.Version {
				t.Errorf("Validate(%+v) filled %+v, want %+v", tt.in, o, tt.want)
			}
		})
	}
}
