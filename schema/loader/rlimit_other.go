//go:build !linux

package loader

import "time"

// limitCPU does nothing outside Linux: there the parent's wall-clock
// deadline is the only bound on a child's CPU time.
func limitCPU(time.Duration) error { return nil }
