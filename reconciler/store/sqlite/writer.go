package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch is the most writes one transaction carries. A batch is what
// queued while the previous one was committing; the cap bounds how long a
// write that arrives in a flood waits behind others in its own batch.
const maxBatch = 128

// errClosed answers a write sent after Close.
var errClosed = errors.New("store is closed")

// writer runs the store's write transactions on its single write
// connection, several at a time: the writes that queue up while one
// transaction commits go into the next transaction together, each inside
// its own savepoint, and share its commit (group commit). With
// synchronous=FULL every commit waits for the disk, so under load one wait
// serves a whole batch instead of one write; alone, a write is a
// transaction of its own as before.
//
// Each write keeps its own outcome: one whose function fails is rolled
// back to its savepoint and the others in its batch commit without it. A
// write is answered only once its batch is committed (or known not to be),
// so an answer without error still means the write is durable. If the
// transaction itself fails (an I/O error or a full disk makes SQLite roll
// back the whole transaction; a failed commit), every write in the batch
// gets the error and none is stored.
//
// A write waits for its turn under its caller's context, but once its
// function starts it runs to the end without it: SQLite answers an
// interrupted write inside a transaction by rolling back the whole
// transaction, which would take the other writes of the batch with it.
type writer struct {
	pool  *sql.DB // the write pool, one connection
	stmts *statements
	ops   chan *writeOp
	done  chan struct{} // closed when run returns

	mu     sync.RWMutex // held for reading while sending on ops
	closed bool

	// Counters for WriteStats.
	transactions, writes, busyNanos atomic.Int64
}

// WriteStats counts the store's writes since it opened.
type WriteStats struct {
	// Transactions is how many write transactions ran, Writes how many
	// writes they carried: Writes/Transactions is the mean batch size.
	Transactions, Writes int64
	// Busy is how long the writer spent running them; its rate is the
	// share of time the store's single writer is busy, its saturation.
	Busy time.Duration
}

// WriteStats returns the store's write counters.
func (db *DB) WriteStats() WriteStats {
	w := db.writer
	return WriteStats{
		Transactions: w.transactions.Load(),
		Writes:       w.writes.Load(),
		Busy:         time.Duration(w.busyNanos.Load()),
	}
}

// A writeOp is one write transaction waiting for, or in, a batch.
type writeOp struct {
	ctx context.Context
	fn  func(*wtx) error
	// lazy writes may commit without waiting for the disk (see
	// DB.updateLazy); a batch waits for the disk unless all its writes are
	// lazy.
	lazy   bool
	state  atomic.Int32 // opWaiting, then opTaken or opWithdrawn
	result chan error   // buffered: the writer never blocks on it
}

const (
	opWaiting int32 = iota
	opTaken
	opWithdrawn
)

func newWriter(pool *sql.DB, stmts *statements) *writer {
	w := &writer{pool: pool, stmts: stmts, ops: make(chan *writeOp, 4*maxBatch), done: make(chan struct{})}
	go w.run()
	return w
}

// do runs fn in a write transaction and returns once that transaction is
// committed (nil) or rolled back (fn's error or the transaction's).
func (w *writer) do(ctx context.Context, lazy bool, fn func(*wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, lazy: lazy, result: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return errClosed
	}
	select {
	case w.ops <- op:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-op.result:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opWaiting, opWithdrawn) {
			return ctx.Err()
		}
		// Already in a transaction: its outcome is the answer.
		return <-op.result
	}
}

// close lets the writes already queued finish and stops the writer.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	<-w.done
}

// run takes the queued writes in batches until close.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]*writeOp, 0, maxBatch)
	for op := range w.ops {
		batch = append(batch[:0], op)
	fill:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, op)
			default:
				break fill
			}
		}
		live := batch[:0]
		for _, op := range batch {
			if op.state.CompareAndSwap(opWaiting, opTaken) {
				live = append(live, op)
			}
		}
		if len(live) == 0 {
			continue
		}
		start := time.Now()
		errs := w.commit(live)
		w.busyNanos.Add(int64(time.Since(start)))
		w.transactions.Add(1)
		w.writes.Add(int64(len(live)))
		for i, op := range live {
			op.result <- errs[i]
		}
		clear(batch) // let the answered writes go
	}
}

// commit runs ops in one transaction and returns each one's outcome.
func (w *writer) commit(ops []*writeOp) []error {
	errs := make([]error, len(ops))
	failAll := func(err error) []error {
		for i := range errs {
			errs[i] = errors.Join(errs[i], err)
		}
		return errs
	}
	ctx := context.Background()
	conn, err := w.pool.Conn(ctx)
	if err != nil {
		return failAll(fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()

	lazy := true
	for _, op := range ops {
		lazy = lazy && op.lazy
	}
	if lazy {
		restore, err := relaxSync(ctx, conn)
		if err != nil {
			return failAll(fmt.Errorf("relax sync: %w", err))
		}
		defer restore()
	}

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return failAll(fmt.Errorf("begin: %w", err))
	}
	t := &wtx{tx: tx, stmts: w.stmts, pool: w.pool, cache: map[string]*sql.Stmt{}}
	if len(ops) == 1 {
		// Alone in its transaction: no savepoint needed.
		if err := t.run(ops[0]); err != nil {
			errs[0] = errors.Join(err, rollback(tx))
			return errs
		}
	} else if err := t.runSavepoints(ops, errs); err != nil {
		return failAll(errors.Join(err, rollback(tx)))
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("commit: %w", err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// relaxSync sets conn's synchronous level to NORMAL for a batch of lazy
// writes and returns the function that sets it back to FULL once the
// batch's transaction has ended.
func relaxSync(ctx context.Context, conn *sql.Conn) (restore func(), err error) {
	// The level is the connection's and may not change inside a
	// transaction: relax it around this one. A connection whose level
	// cannot be restored is discarded rather than reused (a new one
	// opens with FULL); the writes are already decided by then, so
	// their outcome stands.
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return nil, err
	}
	return func() {
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=FULL"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

// runSavepoints runs each of ops in t inside its own savepoint, so that a
// write that fails is undone alone: its error goes into errs at its index
// and the others stay in the transaction. An error runSavepoints returns
// is the transaction's (a savepoint could not be set, undone or released)
// and leaves the caller to roll the whole transaction back.
func (t *wtx) runSavepoints(ops []*writeOp, errs []error) error {
	for i, op := range ops {
		t.ctx = context.Background()
		if _, err := t.exec(savepointQuery); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		if err := t.run(op); err != nil {
			errs[i] = err
			if _, rerr := t.exec(rollbackToQuery); rerr != nil {
				// The transaction is gone with the savepoint.
				return fmt.Errorf("a write in the same transaction failed and could not be undone alone: %w", rerr)
			}
		}
		if _, err := t.exec(releaseQuery); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	return nil
}

// The savepoint each write of a batch runs in. RELEASE after ROLLBACK TO
// ends the (now empty) savepoint too.
var (
	savepointQuery  = writeQuery(`SAVEPOINT write`)
	rollbackToQuery = writeQuery(`ROLLBACK TO write`)
	releaseQuery    = writeQuery(`RELEASE write`)
)

// wtx is a write transaction as a write function sees it: queries run
// under the write's context through the statements Open prepared.
type wtx struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts *statements
	pool  *sql.DB
	// cache holds the statements bound to tx, shared by the writes of a
	// batch.
	cache map[string]*sql.Stmt
}

// run runs op's function in t under op's context (without its
// cancellation). A function that panics fails its own write instead of
// the controller: the writer goroutine serves every write.
func (t *wtx) run(op *writeOp) (err error) {
	t.ctx = context.WithoutCancel(op.ctx)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write failed: panic: %v", p)
		}
	}()
	return op.fn(t)
}

// stmt returns query's prepared statement bound to the transaction, or nil
// when query was not registered with writeQuery (it then runs unprepared).
func (t *wtx) stmt(query string) *sql.Stmt {
	if st, ok := t.cache[query]; ok {
		return st
	}
	st := t.stmts.lookup(t.pool, query)
	if st == nil {
		t.stmts.unprepared.Add(1)
		return nil
	}
	st = t.tx.StmtContext(t.ctx, st)
	t.cache[query] = st
	return st
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

func (t *wtx) query(query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
}

func (t *wtx) queryRow(query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}
