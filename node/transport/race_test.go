//go:build race

package transport

// raceEnabled: the race detector slows this process several times over;
// load tests scale down by it so they measure policy, not the detector.
const raceEnabled = true
