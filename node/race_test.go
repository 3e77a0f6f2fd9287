//go:build race

package node_test

// raceEnabled: the race detector slows the process five to ten times over;
// the tests that measure a large mesh (64 nodes) leave it to the plain run,
// where they measure the mesh and not the detector. The smaller subnet
// tests still run under it.
const raceEnabled = true
