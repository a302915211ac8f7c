package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// storeFile is the SQLite store's name in the data directory.
const storeFile = "patchline.db"

// lockFile, in the data directory, is held locked by the patchd that uses
// the directory, so that a second patchd or a restore cannot write under
// it.
const lockFile = "patchd.lock"

// errDataDirInUse is the answer of lockDataDir when another process holds
// the lock.
var errDataDirInUse = errors.New("another patchd is using this data directory; stop it first")

// Restore replaces the store in dataDir with the backup at from (made by
// GET /v1/backup, `patchctl backup`), after checking it, creating dataDir
// if needed. patchd must not be running on dataDir. The replaced store is
// kept in dataDir under the returned name (empty when there was none).
func Restore(ctx context.Context, dataDir, from string) (kept string, err error) {
	if dataDir == "" {
		return "", errors.New("no data directory: pass --data-dir")
	}
	// Restoring onto a new machine starts from an empty data directory.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return "", err
	}
	defer unlock()
	return sqlite.Restore(ctx, filepath.Join(dataDir, storeFile), from)
}

// lockedStore is the controller's store, with the data directory's lock
// released when it closes.
type lockedStore struct {
	*sqlite.DB
	unlock func()
}

func (s *lockedStore) Close() error {
	defer s.unlock()
	return s.DB.Close()
}
