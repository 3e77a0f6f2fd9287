//go:build !race

package node_test

// raceEnabled: see race_test.go.
const raceEnabled = false
