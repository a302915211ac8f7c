// Package postgres is the controller's store in PostgreSQL: what the API
// and the controller keep (package store), in one database that several
// patchd replicas share, through pgx and its connection pool.
//
// It keeps the invariants of package store with several writers at once,
// in other processes as well as in this one:
//
//   - Every write is one transaction at READ COMMITTED. Instead of
//     SERIALIZABLE (which aborts transactions that merely read near each
//     other, and would abort concurrent reports of different endpoints),
//     each write locks what it depends on, always in the same order, so
//     writes that touch the same things run one after the other and the
//     others do not wait for each other: first the row of every endpoint
//     whose inventory, attempts or job numbers it changes (SELECT ... FOR
//     NO KEY UPDATE, several in id order), then the job rows it changes
//     (to lease, finish or expire them; revoking an endpoint expires its
//     open jobs), and last the audit lock (audit.go). RecordHalts takes
//     a lock of its own per client first (halts.go). Under the
//     endpoint lock a job's sequence number is checked against the
//     endpoint's job_seq and raised in the same transaction, so a number
//     is never given twice; a job's row is locked before its result is
//     recorded, so a result is recorded once. The fleet-wide first_seen
//     rows are inserted in key order, so two reports never deadlock on
//     them. A deadlock or serialization failure that happens all the same
//     (40P01, 40001), or a connection lost before the commit, is retried a
//     few times, from the start.
//   - Audit entries get their ids under a transaction-scoped advisory lock
//     held until commit, so ids become visible in the order they were
//     given and Audit(afterID) paging never skips an entry (audit.go).
//   - Times are Unix nanoseconds (bigint), as in the SQLite store: the
//     same precision and range both ways; timestamptz would round to
//     microseconds. Signed payloads and signatures are bytea, returned
//     byte for byte. Identifiers use the "C" collation, so snapshots are
//     sorted as Go sorts strings whatever the database's locale.
//   - An inventory report (and a token's last use) commits with synchronous_commit off (the server
//     answers before its log is on disk; a crash of the database server
//     may lose the last reports, never part of one): reports are
//     level-based and every agent sends its whole inventory again at least
//     hourly. Enrollments, jobs, results and revisions wait for the disk
//     and for synchronous standbys, as the server is configured.
//
// Open brings the schema up to date (migrations/*.sql, one transaction,
// under an advisory lock, so replicas starting together migrate once) and
// refuses a database whose schema is newer than this patchd knows.
//
// The controller table records the public half of the job-signing key
// the first patchd on the database signed with (RecordSigningKey), so a
// patchd with another key can refuse to start.
//
// Backups are PostgreSQL's own (pg_dump, or base backups with WAL
// archiving for point-in-time recovery): Backup returns
// ErrBackupUnsupported.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// DB is the PostgreSQL store. It is safe for concurrent use, and several
// DBs (in several processes) may share one database.
type DB struct {
	pool *pgxpool.Pool
	// Counters for WriteStats.
	writes, transactions, retries, busyNanos atomic.Int64
	// fencing, fence and fencedWrites are the leader lease's fencing
	// (lease.go): whether leader-only writes check the token, the token
	// they check against (0: none), and how many were refused.
	fencing      atomic.Bool
	fence        atomic.Int64
	fencedWrites atomic.Int64
}

// An Option changes how Open connects.
type Option func(*options)

type options struct {
	password    string
	hasPassword bool
}

// WithPassword sets the password to connect with, in place of one in the
// connection string: the caller reads it from a file so that it appears
// neither in the command line nor in the environment.
func WithPassword(password string) Option {
	return func(o *options) { o.password, o.hasPassword = password, true }
}

// Open connects to the database dsn names (a postgres:// URL or a
// key/value connection string, as libpq takes them; pgx's pool settings
// such as pool_max_conns may be added to it), brings its schema up to
// date and returns the store. What the string leaves out comes from
// PostgreSQL's usual defaults (the PG* environment variables, the
// password file), as for every PostgreSQL client.
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, fmt.Errorf("open store: the PostgreSQL connection string is empty: %w", store.ErrInvalid)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx leaves any password out of its message.
		return nil, fmt.Errorf("open store: PostgreSQL connection string: %w: %w", err, store.ErrInvalid)
	}
	if o.hasPassword {
		cfg.ConnConfig.Password = o.password
	}
	if _, ok := cfg.ConnConfig.RuntimeParams[idleInTxParam]; !ok {
		cfg.ConnConfig.RuntimeParams[idleInTxParam] = idleInTxTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: connect to PostgreSQL at %s: %w", where(cfg.ConnConfig), err)
	}
	if err := migrate(ctx, pool, migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: PostgreSQL database %q at %s: %w", cfg.ConnConfig.Database, where(cfg.ConnConfig), err)
	}
	return &DB{pool: pool}, nil
}

// idleInTxTimeout ends the session of a transaction left open by its
// client for longer (unless the connection string sets the parameter):
// every write here sends its statements back to back, so only a patchd
// whose process is paused (SIGSTOP, a frozen VM) idles in one, and the
// row locks it holds, the leader lease's among them, must not keep the
// other replicas waiting for longer than a lease lasts.
const (
	idleInTxParam   = "idle_in_transaction_session_timeout"
	idleInTxTimeout = "5s"
)

// where names the server of c for error messages.
func where(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

// Close closes the store's connections once the calls under way have
// returned them. Closing twice is harmless.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// Tables are the tables of the store, every one of which a backup must
// hold: the database is the store, and its own tools copy it.
var Tables = []string{
	"endpoints", "updates", "first_seen", "jobs", "attempts", "revisions", "halts", "audit", "tokens", "controller", "leader", "schema_migrations",
	"enroll_tokens",
}

// ErrBackupUnsupported is Backup's error: patchd does not copy a
// PostgreSQL store. Its message says what to do instead; it is
// store.ErrInvalid (the request is one this store never answers).
var ErrBackupUnsupported error = backupUnsupported{}

type backupUnsupported struct{}

func (backupUnsupported) Error() string {
	return "this patchd keeps its store in PostgreSQL, which patchd does not copy: back the database up with PostgreSQL's own tools, " +
		"pg_dump (for example pg_dump --format=custom --file=patchline.dump DBNAME) or base backups with WAL archiving for point-in-time recovery. " +
		"Back up the whole database: its tables " + strings.Join(Tables, ", ") + " are all the store. " +
		"The job-signing key file (--signing-key) is not in the database: keep a copy of it too"
}

func (backupUnsupported) Is(target error) bool { return target == store.ErrInvalid }

// Backup returns ErrBackupUnsupported: see the package documentation.
func (db *DB) Backup(context.Context) (io.ReadCloser, int64, error) {
	return nil, 0, ErrBackupUnsupported
}

// WriteStats counts the store's writes since it opened.
type WriteStats struct {
	// Writes is how many writes were asked for; Transactions how many
	// transactions they ran, more than Writes by the retries.
	Transactions, Writes int64
	// Retries is how many transactions were run again after a deadlock
	// or a serialization failure.
	Retries int64
	// Busy is the time writes took, summed: writes run side by side, so
	// it may grow faster than the clock.
	Busy time.Duration
}

// WriteStats returns the store's write counters.
func (db *DB) WriteStats() WriteStats {
	return WriteStats{
		Transactions: db.transactions.Load(),
		Writes:       db.writes.Load(),
		Retries:      db.retries.Load(),
		Busy:         time.Duration(db.busyNanos.Load()),
	}
}

// maxAttempts bounds how often a write runs when it keeps meeting
// deadlocks or serialization failures; backoffBase is the wait before the
// second attempt, doubled for each next one (with jitter).
const (
	maxAttempts = 8
	backoffBase = 2 * time.Millisecond
)

// errRetry makes write run the transaction again: what it found is only
// true of a moment (another writer's row appeared between two statements).
var errRetry = errors.New("a concurrent write changed what this one read; try again")

// errNotCommitted marks a transaction whose connection failed before its
// commit was sent: the server rolled it back, so running it again on
// another connection is safe. It is how a write survives a connection
// that died while idle in the pool (the server restarted, or a failover
// moved the primary). A commit whose answer is lost is not retried: it
// may have committed.
var errNotCommitted = errors.New("the connection failed before the transaction committed")

// wtx is a write transaction as a write function sees it: queries run
// under the write's context, and audit entries wait in audit for the end
// of the transaction (see flushAudit).
type wtx struct {
	ctx   context.Context
	tx    pgx.Tx
	audit []protocol.AuditEntry
}

func (t *wtx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	return t.tx.Exec(t.ctx, sql, args...)
}

func (t *wtx) query(sql string, args ...any) (pgx.Rows, error) {
	return t.tx.Query(t.ctx, sql, args...)
}

func (t *wtx) queryRow(sql string, args ...any) pgx.Row {
	return t.tx.QueryRow(t.ctx, sql, args...)
}

// send runs the queries of b in one round trip. A query's callback that
// returns an error stops the rest.
func (t *wtx) send(b *pgx.Batch) error {
	return t.tx.SendBatch(t.ctx, b).Close()
}

// update runs fn as one write transaction and returns once it is
// committed, or not stored.
func (db *DB) update(ctx context.Context, fn func(*wtx) error) error {
	return db.write(ctx, false, fn)
}

// updateLazy is update for a write whose commit need not wait for the
// disk (see the package documentation: inventory reports).
func (db *DB) updateLazy(ctx context.Context, fn func(*wtx) error) error {
	return db.write(ctx, true, fn)
}

// write runs fn in a transaction and commits it, running it again after a
// deadlock, a serialization failure or a connection lost before the
// commit (at most maxAttempts times in all).
// fn must be safe to run again: it starts from its inputs each time.
func (db *DB) write(ctx context.Context, lazy bool, fn func(*wtx) error) error {
	start := time.Now()
	db.writes.Add(1)
	defer func() { db.busyNanos.Add(int64(time.Since(start))) }()
	for attempt := 1; ; attempt++ {
		db.transactions.Add(1)
		err := db.try(ctx, lazy, fn)
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return classify(err)
		}
		if attempt == maxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, classify(err))
		}
		db.retries.Add(1)
		// Full jitter: writers that collided do not collide again in step.
		wait := rand.N(backoffBase << (attempt - 1))
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// Transaction starts: a lazy one turns off waiting for the disk for
// itself alone, in the same round trip.
var (
	durableTx = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}
	lazyTx    = pgx.TxOptions{BeginQuery: "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off"}
)

// try runs fn in one transaction: fn, then the audit entries it left,
// then the commit.
func (db *DB) try(ctx context.Context, lazy bool, fn func(*wtx) error) error {
	opts := durableTx
	if lazy {
		opts = lazyTx
	}
	tx, err := db.pool.BeginTx(ctx, opts)
	if err != nil {
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", err, errNotCommitted)
		}
		return fmt.Errorf("begin: %w", err)
	}
	// After a commit, Rollback does nothing. After an error it ends the
	// transaction; when ctx is done, pgx closes the connection instead,
	// which ends it as well.
	defer tx.Rollback(ctx)
	t := &wtx{ctx: ctx, tx: tx}
	err = fn(t)
	if err == nil {
		err = t.flushAudit()
	}
	if err != nil {
		if tx.Conn().IsClosed() && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", err, errNotCommitted)
		}
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retryable says whether err is worth running the transaction again for:
// a deadlock, a serialization failure, errRetry or errNotCommitted.
func retryable(err error) bool {
	if errors.Is(err, errRetry) || errors.Is(err, errNotCommitted) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// classify marks the database's data exceptions (SQLSTATE class 22: a
// NUL byte or invalid UTF-8 in text, a number out of range) as
// store.ErrInvalid: the input, not the store, is wrong.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		return fmt.Errorf("%w: %w", err, store.ErrInvalid)
	}
	return err
}

// readTx runs fn in a read-only transaction that sees one snapshot of the
// database throughout, so the queries of a snapshot agree.
func (db *DB) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Ending a read transaction has nothing to undo and cannot lose data.
	defer tx.Rollback(ctx)
	return fn(tx)
}

// Times are stored as Unix nanoseconds in UTC; the zero time is NULL.
// That covers the years 1678 to 2261; storable checks times that come from
// policy rather than from a clock.

func storable(t time.Time) bool {
	return t.Year() > 1677 && t.Year() < 2262
}

// timeOf is the time a nullable column holds.
func timeOf(n pgtype.Int8) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// listArg is a list as a column value: an empty list is NULL.
func listArg(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

// timeLayout formats times in error messages.
const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// scanAll reads every row of rows with scan and closes rows; nil for
// none.
func scanAll[T any](rows pgx.Rows, scan func(pgx.Rows) (T, error)) ([]T, error) {
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
