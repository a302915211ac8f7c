// Package sqlite is the embedded store of the controller: what the API and
// the controller keep (package store), in a single SQLite file in the
// controller's data directory, through the pure Go driver modernc.org/sqlite.
//
// The file is opened in WAL mode with synchronous=FULL. Every write runs in
// one transaction (shared with the writes that arrive with it, each in its
// own savepoint; see writer), so a crash at any point (kill -9, OOM kill,
// power loss) leaves the store as it was after some commit, never in
// between. FULL
// makes SQLite fsync the log at every commit, so a committed transaction is
// on disk before the call that made it returns. That is what the outbox
// protocol needs: once the controller acknowledges a job result the agent
// deletes its copy, so an acknowledged result must survive not only a
// killed controller (WAL alone gives that) but also the machine going down
// right after (synchronous=NORMAL could lose the last commits then).
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/reconciler/store"

	// The driver registers itself as "sqlite".
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection. Inside one process writes never wait on each other (there is
// one write connection); this covers a checkpoint or a second process such
// as a backup.
const busyTimeout = 10 * time.Second

// DB is the SQLite store. It is safe for concurrent use.
type DB struct {
	path string // the store file
	// write has exactly one connection. SQLite allows one writer at a time;
	// with several write connections, two transactions that read before
	// they write can each hold a read snapshot and then fail with
	// SQLITE_BUSY when the second tries to write (SQLite cannot wait there
	// without deadlocking). Queueing writers in database/sql's pool instead
	// makes writes wait their turn and never fail for lock reasons, and
	// BEGIN IMMEDIATE on that connection takes the write lock up front.
	write *sql.DB
	// read is a pool of query-only connections. In WAL mode readers see a
	// consistent snapshot and neither block nor are blocked by the writer,
	// so snapshots for the planner and /v1/state run beside writes.
	read *sql.DB
	// stmts holds the prepared statements of both pools.
	stmts statements
	// writer runs every write transaction on write.
	writer *writer
}

// Open opens (creating if needed) the store in the SQLite file at path and
// brings its schema up to date. Migrations that already ran are not run
// again, so Open on every start is safe.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := createFile(path); err != nil {
		return nil, err
	}

	params := url.Values{}
	params.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	params.Set("_foreign_keys", "1")
	params.Set("_synchronous", "FULL")
	params.Set("_journal_mode", "WAL")

	write, err := openWrite(path, params)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}

	// Nothing is written to a damaged store, not even a migration.
	if err := quickCheck(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %q: %w", path, damaged(err))
	}
	// Migrate before the read pool opens so readers never see an old schema.
	if err := migrate(ctx, write, migrations); err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %q: %w", path, damaged(err))
	}

	read, err := openRead(ctx, path, params)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %q: %w", path, damaged(err))
	}
	db := &DB{path: path, write: write, read: read}
	if err := errors.Join(db.stmts.prepare(ctx, write, writeQueries), db.stmts.prepare(ctx, read, readQueries)); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %q: %w", path, err), db.stmts.close(), read.Close(), write.Close())
	}
	db.writer = newWriter(write, &db.stmts)
	return db, nil
}

// ErrDamaged is what Open's error wraps when the store file is damaged:
// SQLite's quick check finds a fault in it, or SQLite calls it corrupt or
// not a database. Nothing in it can be trusted; restore a backup.
var ErrDamaged = errors.New("the store is damaged")

// quickCheck runs SQLite's quick check (every page and index entry is
// well formed, without checking that indexes match their tables, which
// takes much longer) over the whole file, its write-ahead log included.
func quickCheck(ctx context.Context, db *sql.DB) error {
	// At most a few problems: the first ones say enough.
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(3)")
	if err != nil {
		return fmt.Errorf("quick check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("quick check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("quick check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: SQLite's quick check found: %s", ErrDamaged, strings.Join(problems, "; "))
	}
	return nil
}

// damaged marks err with ErrDamaged when SQLite said the file is corrupt
// or not a database.
func damaged(err error) error {
	var se *sqlitedriver.Error
	if errors.Is(err, ErrDamaged) || !errors.As(err, &se) {
		return err
	}
	// The primary result code is the low byte of an extended one.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
}

// Files returns the files the store at path lives in: the database and,
// while it is open or after a crash, its write-ahead log and its
// shared-memory index. SQLite creates the last two with the database's
// permissions, which createFile makes the owner's only.
func Files(path string) []string {
	return []string{path, path + "-wal", path + "-shm"}
}

// createFile checks that path names a file and creates the file when it is
// missing, so that it has the permissions the store needs before SQLite
// opens it. Its errors are Open's.
func createFile(path string) error {
	// The driver reads connection parameters after the first '?'.
	if path == "" || strings.Contains(path, "?") {
		return fmt.Errorf("open store %q: path must be a file name without '?': %w", path, store.ErrInvalid)
	}
	// The file holds node key hashes and signed jobs: create it readable by
	// the controller only. SQLite gives the -wal and -shm files the same
	// permissions.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open store %q: %w", path, err)
	}
	return nil
}

// openWrite opens the write pool on path with params: one connection
// (see DB.write) whose transactions take the write lock at BEGIN.
func openWrite(path string, params url.Values) (*sql.DB, error) {
	wparams := cloneValues(params)
	wparams.Set("_txlock", "immediate")
	// The writer copies the log into the database file (a checkpoint)
	// once the log holds 10,000 pages (about 40 MB) instead of SQLite's
	// 1,000: pages written again and again, such as those of the
	// endpoints table during a fleet's reports, are copied once per
	// checkpoint, and a report storm spends a tenth less time writing.
	wparams.Add("_pragma", "wal_autocheckpoint(10000)")
	write, err := sql.Open("sqlite", path+"?"+wparams.Encode())
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	return write, nil
}

// openRead opens the read pool on path with params: query-only
// connections, as many as there are processors and at least two. It pings
// the pool so a file SQLite cannot read fails here; on error nothing stays
// open.
func openRead(ctx context.Context, path string, params url.Values) (*sql.DB, error) {
	rparams := cloneValues(params)
	rparams.Set("_query_only", "1")
	// journal_mode is a property of the file, already set by the writer.
	rparams.Del("_journal_mode")
	read, err := sql.Open("sqlite", path+"?"+rparams.Encode())
	if err != nil {
		return nil, err
	}
	n := max(2, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		return nil, err
	}
	return read, nil
}

// Close finishes the writes already under way and closes the store.
// Everything committed is on disk.
func (db *DB) Close() error {
	db.writer.close()
	return errors.Join(db.stmts.close(), db.read.Close(), db.write.Close())
}

// update runs fn as one write transaction, grouped with other writes (see
// writer), and returns once it is committed and on disk, or not stored.
func (db *DB) update(ctx context.Context, fn func(*wtx) error) error {
	return db.writer.do(ctx, false, fn)
}

// updateLazy is update for a write that may be lost to a power cut but
// not to a crash: its commit need not wait for the disk (synchronous=NORMAL;
// in WAL mode the commit is in the operating system's cache, safe from a
// killed process, and the next durable commit writes it to disk with its
// own). Inventory reports are such writes: every agent sends its whole
// inventory again at least hourly and after each job. Enrollments, jobs,
// results and revisions stay durable.
func (db *DB) updateLazy(ctx context.Context, fn func(*wtx) error) error {
	return db.writer.do(ctx, true, fn)
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, rollback(tx))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// rollback rolls tx back; a transaction the driver already ended is no error.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// readTx runs fn in a read transaction on the read pool, so every query in
// fn sees the same snapshot of the database.
func (db *DB) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Ending a read transaction has nothing to undo and cannot lose data.
	defer tx.Rollback()
	return fn(tx)
}

// Times are stored as Unix nanoseconds in UTC; the zero time is NULL.
// That covers the years 1678 to 2261; storable checks times that come from
// policy rather than from a clock.

func storable(t time.Time) bool {
	return t.Year() > 1677 && t.Year() < 2262
}

func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func timeOf(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// jsonArg encodes a list as JSON text; an empty list is NULL.
func jsonArg[T any](v []T) (any, error) {
	if len(v) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// jsonList decodes what jsonArg stored.
func jsonList[T any](s sql.NullString) ([]T, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var v []T
	if err := json.Unmarshal([]byte(s.String), &v); err != nil {
		return nil, err
	}
	return v, nil
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scanAll reads every row of rows with scan and closes rows; nil for
// none.
func scanAll[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
