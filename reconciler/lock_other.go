//go:build !unix

package reconciler

// lockDataDir does not lock on systems without flock: patchd is supported
// on Linux (README, "Running it for real"), where the data directory is
// locked; elsewhere keep to one patchd per data directory by hand.
func lockDataDir(dir string) (unlock func(), err error) {
	return func() {}, nil
}
