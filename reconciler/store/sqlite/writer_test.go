package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// holdWriter starts a write that blocks the writer until release is
// called, so the writes sent meanwhile queue up and commit as one batch.
// release returns the held write's outcome.
func holdWriter(t *testing.T, db *DB) (release func() error) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	result := make(chan error, 1)
	go func() {
		result <- db.update(context.Background(), func(tx *wtx) error {
			close(started)
			<-unblock
			return appendAudit(tx, protocol.AuditEntry{At: t0, Kind: protocol.AuditKind("held")})
		})
	}()
	<-started
	return func() error {
		close(unblock)
		return <-result
	}
}

// auditKinds lists the kinds of the stored audit entries, in order.
func auditKinds(t *testing.T, db *DB) []string {
	t.Helper()
	entries, err := db.Audit(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, string(e.Kind))
	}
	return kinds
}

// queued waits until n writes wait in the writer's queue.
func queued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(db.writer.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", len(db.writer.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBatchKeepsEachWritesOutcome: writes that queue up commit together,
// and one that fails leaves no trace while the others of its batch are
// stored.
func TestBatchKeepsEachWritesOutcome(t *testing.T) {
	db, _ := openTest(t)
	release := holdWriter(t, db)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.update(context.Background(), func(tx *wtx) error {
				if err := appendAudit(tx, protocol.AuditEntry{At: t0, Kind: protocol.AuditKind(fmt.Sprintf("w%d", i))}); err != nil {
					return err
				}
				if i%3 == 1 {
					return fmt.Errorf("write %d refused after writing", i)
				}
				return nil
			})
		})
		queued(t, db, i+1)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// The held write was a transaction alone; the ten queued behind it
	// shared the next one.
	if st := db.WriteStats(); st.Transactions != 2 || st.Writes != n+1 || st.Busy <= 0 {
		t.Errorf("write stats %+v, want 2 transactions of %d writes and some busy time", st, n+1)
	}
	want := []string{"held"}
	for i, err := range errs {
		if i%3 == 1 {
			if err == nil || err.Error() != fmt.Sprintf("write %d refused after writing", i) {
				t.Errorf("write %d: error %v, want its own", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
		want = append(want, fmt.Sprintf("w%d", i))
	}
	if diff := cmp.Diff(want, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
}

// TestBatchLostTransactionFailsEveryWrite: when a write's failure takes
// the whole transaction with it, no write of the batch is stored, every
// one is told, and the store goes on working.
func TestBatchLostTransactionFailsEveryWrite(t *testing.T) {
	db, _ := openTest(t)
	release := holdWriter(t, db)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.update(context.Background(), func(tx *wtx) error {
				if err := appendAudit(tx, protocol.AuditEntry{At: t0, Kind: protocol.AuditKind(fmt.Sprintf("w%d", i))}); err != nil {
					return err
				}
				if i == 2 {
					// What SQLite does on a full disk or an I/O error.
					if _, err := tx.tx.ExecContext(tx.ctx, "ROLLBACK"); err != nil {
						return err
					}
					return errors.New("disk full")
				}
				return nil
			})
		})
		queued(t, db, i+1)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("write %d succeeded in a transaction that was rolled back", i)
		}
	}
	if diff := cmp.Diff([]string{"held"}, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
	if err := db.AppendAudit(context.Background(), protocol.AuditEntry{At: t0, Kind: "after"}); err != nil {
		t.Fatalf("write after the lost transaction: %v", err)
	}
	if diff := cmp.Diff([]string{"held", "after"}, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
}

// TestWriteCancelledWhileQueued: a write whose context ends before its
// turn returns the context's error and is never run.
func TestWriteCancelledWhileQueued(t *testing.T) {
	db, _ := openTest(t)
	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		result <- db.update(ctx, func(tx *wtx) error {
			return appendAudit(tx, protocol.AuditEntry{At: t0, Kind: "cancelled"})
		})
	}()
	queued(t, db, 1)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write returned %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"held"}, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
}

// TestCloseFinishesQueuedWrites: Close waits for the writes already sent,
// and a write after Close is an error, not a hang.
func TestCloseFinishesQueuedWrites(t *testing.T) {
	db, path := openTest(t)
	release := holdWriter(t, db)
	result := make(chan error, 1)
	go func() {
		result <- db.AppendAudit(context.Background(), protocol.AuditEntry{At: t0, Kind: "queued"})
	}()
	queued(t, db, 1)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != nil {
		t.Errorf("write queued before Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(context.Background(), protocol.AuditEntry{At: t0, Kind: "late"}); !errors.Is(err, errClosed) {
		t.Errorf("write after Close returned %v, want %v", err, errClosed)
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if diff := cmp.Diff([]string{"held", "queued"}, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
}

// TestWritesRunPrepared: every statement of the store's writes was
// prepared when it opened; none is parsed again on each call.
func TestWritesRunPrepared(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	replace(t, db, report("ep-1", t0, kb("KB1", false), kb("KB2", true)))
	replace(t, db, report("ep-1", t0.Add(time.Minute), kb("KB1", false), kb("KB2", true)))
	jobs := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB1"))
	if err := db.LeaseJob(ctx, jobs[0].ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-1", []store.UpdateResult{{Update: "KB1", Result: protocol.ResultSucceeded, At: t0}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.LeaseJob(ctx, jobs[0].ID, t0.Add(time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("lease of a finished job: %v", err)
	}
	if _, err := db.ExpireJobs(ctx, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordRevisions(ctx, []store.Revision{{Hash: "c0ffee", Status: store.RevisionApplied, At: t0, Client: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, protocol.AuditEntry{At: t0, Kind: protocol.AuditHalt, Client: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EndpointByID(ctx, "ep-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DueJobs(ctx, "ep-1", t0); err != nil {
		t.Fatal(err)
	}
	if n := db.stmts.unprepared.Load(); n != 0 {
		t.Errorf("%d write statements ran unprepared; register them with writeQuery", n)
	}
	// The counter counts: a statement nobody registered is one.
	if err := db.update(ctx, func(tx *wtx) error {
		_, err := tx.exec(`DELETE FROM audit WHERE id < 0`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := db.stmts.unprepared.Load(); n != 1 {
		t.Errorf("unprepared count %d after one unregistered statement, want 1", n)
	}
	if !slices.Contains(readQueries, endpointQuery) || !slices.Contains(readQueries, dueJobsQuery) {
		t.Error("the per-request queries are not prepared on the read pool")
	}
}

// TestWritePanicFailsOnlyItself: a write function that panics fails its
// own write, undone, and the store and the other writes go on.
func TestWritePanicFailsOnlyItself(t *testing.T) {
	db, _ := openTest(t)
	for _, batched := range []bool{false, true} {
		var release func() error
		if batched {
			release = holdWriter(t, db)
		}
		var wg sync.WaitGroup
		var panicErr, okErr error
		wg.Go(func() {
			panicErr = db.update(context.Background(), func(tx *wtx) error {
				if err := appendAudit(tx, protocol.AuditEntry{At: t0, Kind: "panicked"}); err != nil {
					return err
				}
				panic("a bug in a write function")
			})
		})
		if batched {
			queued(t, db, 1)
		}
		wg.Go(func() {
			okErr = db.AppendAudit(context.Background(), protocol.AuditEntry{At: t0, Kind: "ok"})
		})
		if batched {
			queued(t, db, 2)
			if err := release(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if panicErr == nil || !strings.Contains(panicErr.Error(), "panic") {
			t.Errorf("batched %v: panicking write returned %v", batched, panicErr)
		}
		if okErr != nil {
			t.Errorf("batched %v: the other write: %v", batched, okErr)
		}
	}
	if diff := cmp.Diff([]string{"ok", "held", "ok"}, auditKinds(t, db)); diff != "" {
		t.Errorf("stored entries (-want +got):\n%s", diff)
	}
}
