package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

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

// keepPrivate gives path the given mode when group or others have any
// permission on it, and logs a warning naming the path and the mode it
// had: anyone who can read the data directory, the job-signing key or the
// store can sign jobs or read node key hashes. An operator who restored
// the files under a loose umask gets them fixed rather than refused. A
// missing path is left alone. Windows reports made-up permission bits, so
// there the files' ACLs are the operator's business, as for the secrets
// file.
func keepPrivate(log *slog.Logger, path string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	old := fi.Mode().Perm()
	if old&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("data directory: %s has mode %04o, open to group or others, and cannot be made %04o: %w; run chmod %o %s as its owner", path, old, mode, err, mode, path)
	}
	log.Warn("data directory: open to group or others; mode fixed", "path", path, "mode", fmt.Sprintf("%04o", old), "fixedMode", fmt.Sprintf("%04o", mode))
	return nil
}

// checkStoreKept refuses a data directory that holds a job-signing key
// but no store, or an empty one: it had a store (the key is written after
// the store, on the first start), which was lost or removed, and starting
// with an empty one would forget every enrolled endpoint and every job
// number agents have seen. initStore (--init-store) starts empty anyway.
func checkStoreKept(dir string, initStore bool) error {
	if initStore {
		return nil
	}
	key := filepath.Join(dir, signingKeyFile)
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		return nil // a new data directory
	} else if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, storeFile)
	state := "missing"
	for i, f := range sqlite.Files(path)[:2] {
		fi, err := os.Stat(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return fmt.Errorf("data directory: %w", err)
		case fi.Size() > 0:
			// A store file, or a log that holds one's commits.
			return nil
		case i == 0:
			state = "empty"
		}
	}
	return fmt.Errorf("data directory %s holds the job-signing key %s but the store %s is %s: this data directory had a store; "+
		"restore it or pass --init-store to start empty. To restore, run patchd --data-dir %s --restore FILE with a copy made by "+
		"patchctl backup (see README, \"Backups and restore\"); --init-store starts with no endpoints, jobs or history, and every agent "+
		"must enrol again", dir, key, path, state, dir)
}

// damagedStoreError is patchd's answer to a store that fails its check
// at start (sqlite.ErrDamaged): it does not serve from it, and says how
// to restore a backup.
func damagedStoreError(dir string, err error) error {
	return fmt.Errorf("%w. patchd does not serve from a damaged store. Restore the last backup: run patchd --data-dir %s --restore FILE "+
		"with a copy made by patchctl backup (the damaged store is kept beside it), then start patchd again; see README, \"Backups and restore\"", err, dir)
}
