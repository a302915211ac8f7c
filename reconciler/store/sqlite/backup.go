package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Backup makes a consistent copy of the store, as it was at one moment,
// while writes go on, and returns it for reading with its size. The copy
// is an SQLite file that Restore accepts. It is made in a temporary file
// next to the store (so it needs as much free space there as the store
// takes) and is removed when the reader is closed; on Unix it is unlinked
// at once, so nothing is left behind even if the controller dies.
func (db *DB) Backup(ctx context.Context) (io.ReadCloser, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(db.path), ".backup-*.db")
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	name := f.Name()
	f.Close()
	fail := func(err error) (io.ReadCloser, int64, error) {
		os.Remove(name)
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	// VACUUM INTO reads the store in one read transaction, so the copy is
	// of one moment and the writer is not held up. The read pool cannot
	// run it (it is query-only), so it gets a connection of its own.
	conn, err := sql.Open("sqlite", db.path+"?_busy_timeout="+strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	if err != nil {
		return fail(err)
	}
	_, err = conn.ExecContext(ctx, "VACUUM INTO ?", name)
	if err := errors.Join(err, conn.Close()); err != nil {
		return fail(err)
	}
	rf, err := os.Open(name)
	if err != nil {
		return fail(err)
	}
	fi, err := rf.Stat()
	if err != nil {
		rf.Close()
		return fail(err)
	}
	if runtime.GOOS != "windows" {
		os.Remove(name)
	}
	return &backupFile{File: rf, name: name}, fi.Size(), nil
}

// backupFile is Backup's copy; closing it removes it.
type backupFile struct {
	*os.File
	name string
}

func (f *backupFile) Close() error {
	err := f.File.Close()
	if rerr := os.Remove(f.name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// Verify checks that the file at path is a store this controller can
// restore: an SQLite database that passes SQLite's integrity check, with
// Patchline's schema at a version this controller knows. It only reads the
// file.
func Verify(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify backup: %w", err)
	}
	head := make([]byte, len(sqliteMagic))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, sqliteMagic) {
		return fmt.Errorf("verify backup %s: not an SQLite database (make backups with 'patchctl backup'): %w", path, store.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("verify backup: %w", err)
	}
	// Read-only and immutable: nothing is written next to the file, not
	// even a log.
	u := url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&immutable=1"}
	conn, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("verify backup %s: %w", path, err)
	}
	defer conn.Close()
	var check string
	if err := conn.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return fmt.Errorf("verify backup %s: %w", path, err)
	}
	if check != "ok" {
		return fmt.Errorf("verify backup %s: damaged: %s: %w", path, check, store.ErrInvalid)
	}
	var version int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("verify backup %s: not a Patchline store (%v): %w", path, err, store.ErrInvalid)
	}
	known, err := knownVersion(migrations)
	if err != nil {
		return fmt.Errorf("verify backup: %w", err)
	}
	if version == 0 || version > known {
		return fmt.Errorf("verify backup %s: schema version %d, this controller knows 1 to %d: %w", path, version, known, store.ErrInvalid)
	}
	return nil
}

// Restore replaces the store file at path with a copy of the backup at
// from, after Verify accepts it. The store must not be open (patchd not
// running). The copy is brought to this controller's schema and gets a
// store-restored audit entry naming the backup, so the audit log says
// why its history jumps. The store it replaces is kept, with its log,
// under the name it returns (empty when there was none). A crash leaves
// either store in place, never a mix.
func Restore(ctx context.Context, path, from string) (kept string, err error) {
	if err := Verify(ctx, from); err != nil {
		return "", err
	}
	tmp, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	defer tmp.Discard()
	src, err := os.Open(from)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	_, err = io.Copy(tmp, src)
	src.Close()
	if err != nil {
		return "", fmt.Errorf("restore: copy %s: %w", from, err)
	}

	now := time.Now().UTC()
	_, statErr := os.Stat(path)
	switch {
	case statErr == nil:
		kept = path + ".before-restore-" + now.Format("20060102T150405Z")
	case !errors.Is(statErr, os.ErrNotExist):
		return "", fmt.Errorf("restore: %w", statErr)
	}
	if err := recordRestore(ctx, tmp.Name(), from, kept, now); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}

	if kept != "" {
		// The store and its log move together: the log holds commits not
		// yet copied into the store file.
		for _, suffix := range []string{"-wal", "-shm", ""} {
			if err := os.Rename(path+suffix, kept+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("restore: keep the current store: %w", err)
			}
		}
	}
	if err := tmp.Commit(); err != nil {
		return kept, fmt.Errorf("restore: %w", err)
	}
	return kept, nil
}

// restoredQuery marks every endpoint's job numbers as unknown (see
// job_seq_unknown in migrations/0004): the backup may be older than the
// last jobs the agents saw.
var restoredQuery = writeQuery(`UPDATE endpoints SET job_seq_unknown = 1`)

// recordRestore opens the copy at path as a store (migrating it to this
// controller's schema), marks its endpoints' job numbers as unknown until
// each one's next report, and appends the store-restored audit entry,
// in one transaction. Closing
// checkpoints everything into the file; a log left beside it would not
// follow the file when it is renamed, so that is an error.
func recordRestore(ctx context.Context, path, from, kept string, at time.Time) error {
	db, err := Open(ctx, path)
	if err != nil {
		return err
	}
	detail, err := json.Marshal(struct {
		Backup string `json:"backup"`
		Kept   string `json:"kept,omitempty"`
	}{from, kept})
	if err == nil {
		err = db.update(ctx, func(tx *wtx) error {
			if _, err := tx.exec(restoredQuery); err != nil {
				return err
			}
			return appendAudit(tx, protocol.AuditEntry{At: at, Kind: protocol.AuditRestore, Detail: detail})
		})
	}
	if err := errors.Join(err, db.Close()); err != nil {
		return err
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return errors.New("the restored copy kept a write-ahead log after closing")
	}
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	return nil
}
