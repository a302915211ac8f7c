//go:build !linux

package loader

import "errors"

// residentBytes is not measured outside Linux: there a child evaluator is
// bounded by its own debug.SetMemoryLimit and by the deadline.
func residentBytes(pid int) (Bytes, error) { return 0, errors.ErrUnsupported }
