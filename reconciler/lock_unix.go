//go:build unix

package reconciler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes the data directory's lock, or fails at once when
// another process holds it. The lock goes with the process: a killed patchd
// leaves no stale lock.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errDataDirInUse)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
