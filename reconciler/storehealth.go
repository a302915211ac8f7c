package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/api"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// The operations a store write is counted under (the op label of
// patchline_store_errors_total): a fixed set, never an id.
const (
	opEnroll   = "enroll"
	opReport   = "report"
	opResult   = "result"
	opJobs     = "jobs"
	opLease    = "lease"
	opRevision = "revision"
	opAudit    = "audit"
)

var storeOps = []string{opEnroll, opReport, opResult, opJobs, opLease, opRevision, opAudit}

// controllerStore is every method patchd calls on its store: the API's,
// the revisions', the replanner's and the controller's own. The SQLite
// store (sqlite.DB) and the PostgreSQL one (postgres.DB) both have them.
type controllerStore interface {
	api.Store
	revisionStore
	replanStore
	// ExpireJobs marks jobs whose window closed unstarted as expired and
	// returns how many.
	ExpireJobs(ctx context.Context, now time.Time) (int, error)
	Close() error
}

// Both stores are controller stores.
var (
	_ controllerStore = (*sqlite.DB)(nil)
	_ controllerStore = (*postgres.DB)(nil)
)

// lockedStore is the controller's store as every part of patchd uses it:
// each write's outcome goes to health, and closing it releases the data
// directory's lock.
type lockedStore struct {
	controllerStore
	health *storeHealth
	// stats reads the store's write counters for its metrics.
	stats  func() writeStats
	unlock func()
	// fenced is told of each leader-only write the store refused because
	// another replica holds the leader lease (postgres.ErrFenced).
	fenced func()
}

// checkFenced tells fenced when err is a refused leader-only write.
func (s *lockedStore) checkFenced(err error) {
	if err != nil && s.fenced != nil && errors.Is(err, postgres.ErrFenced) {
		s.fenced()
	}
}

func (s *lockedStore) Close() error {
	defer s.unlock()
	s.health.closed()
	return s.controllerStore.Close()
}

func (s *lockedStore) Enroll(ctx context.Context, e store.Enrollment) error {
	err := s.controllerStore.Enroll(ctx, e)
	s.health.observe(opEnroll, err, true)
	return err
}

func (s *lockedStore) ReplaceInventory(ctx context.Context, r store.Report) error {
	err := s.controllerStore.ReplaceInventory(ctx, r)
	s.health.observe(opReport, err, true)
	return err
}

func (s *lockedStore) LeaseJob(ctx context.Context, id string, until time.Time) error {
	err := s.controllerStore.LeaseJob(ctx, id, until)
	s.health.observe(opLease, err, true)
	return err
}

func (s *lockedStore) RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error) {
	rec, err := s.controllerStore.RecordResult(ctx, jobID, endpoint, results, now)
	s.health.observe(opResult, err, !rec.Duplicate)
	return rec, err
}

func (s *lockedStore) RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error {
	err := s.controllerStore.RaiseJobSeq(ctx, endpoint, seq)
	// It changes nothing when the number is already above seq, and a
	// transaction that changes nothing commits even on a full disk: its
	// success says nothing of the store's health.
	s.health.observe(opResult, err, false)
	return err
}

func (s *lockedStore) CreateJobs(ctx context.Context, client string, jobs []store.Job, now time.Time) ([]store.Job, error) {
	created, err := s.controllerStore.CreateJobs(ctx, client, jobs, now)
	s.health.observe(opJobs, err, len(created) > 0)
	s.checkFenced(err)
	return created, err
}

func (s *lockedStore) ExpireJobs(ctx context.Context, now time.Time) (int, error) {
	n, err := s.controllerStore.ExpireJobs(ctx, now)
	s.health.observe(opJobs, err, n > 0)
	s.checkFenced(err)
	return n, err
}

func (s *lockedStore) RecordRevisions(ctx context.Context, rs []store.Revision) error {
	err := s.controllerStore.RecordRevisions(ctx, rs)
	s.health.observe(opRevision, err, true)
	s.checkFenced(err)
	return err
}

func (s *lockedStore) RecordHalts(ctx context.Context, client, revision string, halted []protocol.Halt, at time.Time) (int, error) {
	n, err := s.controllerStore.RecordHalts(ctx, client, revision, halted, at)
	s.health.observe(opAudit, err, n > 0)
	s.checkFenced(err)
	return n, err
}

// storeHealth follows the outcome of every write to the store: it counts
// the failures by operation, keeps the last one for /v1/status, and says
// whether patchd is ready (GET /readyz): not while the last write failed
// and none has succeeded since, nor while the store is not open.
type storeHealth struct {
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics.Store

	mu sync.Mutex // guards the fields below
	st protocol.StoreHealth
	// open is false once the store is closed.
	open bool
}

func newStoreHealth(log *slog.Logger, now func() time.Time, m *metrics.Store) *storeHealth {
	return &storeHealth{log: log, now: now, metrics: m, open: true}
}

// observe takes the outcome of one write of op. A failure is a fault of
// the store (a full disk, an I/O error, a closed store); an answer about
// the data (not found, conflict, invalid) or a caller that gave up before
// the write ran is none. A success counts as recovery only when the write
// changed something (wrote): a transaction that changes nothing commits
// even on a full disk.
func (h *storeHealth) observe(op string, err error, wrote bool) {
	switch {
	case err == nil && !wrote:
		return
	case err == nil:
		h.succeeded()
	case !storeFault(err):
		return
	default:
		h.failed(op, err)
	}
}

// storeFault reports whether err says the store failed to write, rather
// than answering about the data or the caller.
func storeFault(err error) bool {
	for _, kind := range []error{store.ErrNotFound, store.ErrConflict, store.ErrInvalid, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, kind) {
			return false
		}
	}
	return true
}

func (h *storeHealth) failed(op string, err error) {
	now := h.now()
	h.metrics.WriteFailed(op)
	h.mu.Lock()
	first := !h.st.Failing
	if first {
		h.st.Failing, h.st.FailingSince = true, now
	}
	h.st.LastError, h.st.LastErrorOp, h.st.LastErrorAt = err.Error(), op, now
	h.mu.Unlock()
	if first {
		h.log.Error("store write failed; GET /readyz answers 503 until a write succeeds", "op", op, "err", err)
	}
}

func (h *storeHealth) succeeded() {
	h.mu.Lock()
	if !h.st.Failing {
		h.mu.Unlock()
		return
	}
	since := h.st.FailingSince
	h.st.Failing, h.st.FailingSince, h.st.RecoveredAt = false, time.Time{}, h.now()
	h.mu.Unlock()
	h.metrics.Recovered()
	h.log.Info("store writes succeed again", "failing_since", since)
}

func (h *storeHealth) closed() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = false
}

// status is the store's health for /v1/status.
func (h *storeHealth) status() protocol.StoreHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

// ready returns why patchd should not get traffic now, or nil. Anyone
// who reaches patchd may ask (GET /readyz), so it names the operation and
// the time, not the error, whose text may hold endpoint or job ids: the
// error is in /v1/status and the log.
func (h *storeHealth) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case !h.open:
		return errors.New("the store is not open")
	case h.st.Failing:
		return fmt.Errorf("the store's last write failed (%s, at %s; failing since %s) and none has succeeded since; patchctl status and the log show the error",
			h.st.LastErrorOp, h.st.LastErrorAt.UTC().Format(time.RFC3339), h.st.FailingSince.UTC().Format(time.RFC3339))
	}
	return nil
}
