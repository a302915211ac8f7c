package reconciler

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/patchline/patchline/reconciler/metrics"
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

// openDataDir creates and locks the data directory and makes it private
// to patchd (keepPrivate), then opens the store and the job-signing key:
// both in the data directory (openSQLite), or the store in PostgreSQL and
// the key given (openPostgres). The lock keeps a second patchd out of the
// directory (its repo clone), whichever the store.
func (c *Controller) openDataDir(ctx context.Context) (ed25519.PrivateKey, error) {
	dir := c.cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := keepPrivate(c.log, dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		if c.cfg.Database != "" && errors.Is(err, errDataDirInUse) {
			err = fmt.Errorf("%w (each patchd on a database needs a --data-dir of its own)", err)
		}
		return nil, err
	}
	open := c.openSQLite
	if c.cfg.Database != "" {
		open = c.openPostgres
	}
	db, stats, key, err := open(ctx)
	if err != nil {
		unlock()
		return nil, err
	}
	health := newStoreHealth(c.log, c.clock.Now, metrics.NewStore(c.reg, storeOps))
	c.store = &lockedStore{controllerStore: db, health: health, stats: stats, unlock: unlock, fenced: c.fenced}
	return key, nil
}

// openSQLite opens the embedded store and the job-signing key in the
// data directory, after the checks only they need: their files private
// to patchd, and a store that the key says was there (checkStoreKept).
// SQLite checks the store itself as it opens (sqlite.ErrDamaged).
func (c *Controller) openSQLite(ctx context.Context) (controllerStore, func() writeStats, ed25519.PrivateKey, error) {
	dir := c.cfg.DataDir
	for _, f := range append([]string{filepath.Join(dir, signingKeyFile)}, sqlite.Files(filepath.Join(dir, storeFile))...) {
		if err := keepPrivate(c.log, f, 0o600); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := checkStoreKept(dir, c.cfg.InitStore); err != nil {
		return nil, nil, nil, err
	}
	// The store before the key: a first start that fails to create the
	// store (a full disk) must not leave a key that says a store was
	// there.
	start := time.Now()
	db, err := sqlite.Open(ctx, filepath.Join(dir, storeFile))
	if errors.Is(err, sqlite.ErrDamaged) {
		err = damagedStoreError(dir, err)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	c.log.Debug("store checked and opened", "path", filepath.Join(dir, storeFile), "took", time.Since(start))
	key, err := loadOrCreateKey(dir)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return db, sqliteStats(db), key, nil
}

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
		"restore it or pass --init-store to start empty. To restore, run patchd restore FILE --data-dir %s with a copy made by "+
		"patchctl backup (see README, \"Backups and restore\"); --init-store starts with no endpoints, jobs or history, and every agent "+
		"must enrol again", dir, key, path, state, dir)
}

// damagedStoreError is patchd's answer to a store that fails its check
// at start (sqlite.ErrDamaged): it does not serve from it, and says how
// to restore a backup.
func damagedStoreError(dir string, err error) error {
	return fmt.Errorf("%w. patchd does not serve from a damaged store. Restore the last backup: run patchd restore FILE --data-dir %s "+
		"with a copy made by patchctl backup (the damaged store is kept beside it), then start patchd again; see README, \"Backups and restore\"", err, dir)
}
