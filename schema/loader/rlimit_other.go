//go:build !unix

package loader

import "time"

// limitCPU does nothing where there is no RLIMIT_CPU: the parent's
// wall-clock deadline is the bound.
func limitCPU(time.Duration) error { return nil }
