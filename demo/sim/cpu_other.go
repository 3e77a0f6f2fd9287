//go:build !unix

package sim

import "time"

// processCPU is unknown here (no getrusage): 0.
func processCPU() time.Duration { return 0 }
