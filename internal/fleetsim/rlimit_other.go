//go:build !linux

package fleetsim

// RaiseFileLimit does nothing outside Linux: there the simulator runs with
// the limit it was given.
func RaiseFileLimit(need uint64) error { return nil }
