package reconciler

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema/loader"
)

// nightWindow is a policy whose only window opens at 02:00 UTC for two
// hours, approving critical security updates at once.
var nightWindow = map[string][]byte{
	"cue.mod/module.cue": []byte(`module: "example.com/fleet"
language: version: "v0.12.0"
`),
	"fleet.cue": []byte(`package fleet

defaults: rings: [{name: "all", select: {}, window: "night", soak: "0m"}]
windows: night: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "02:00", duration: "2h"}
`),
	"clients/acme/client.cue": []byte(`package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
staleAfter: "3d"
baseline: approve: [{name: "critical", category: ["security"], minSeverity: "critical"}]
`),
}

// recordingQueue is an enqueuer that remembers what was added.
type recordingQueue struct {
	mu    sync.Mutex // guards added
	added []string
}

func (q *recordingQueue) Add(client string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.added = append(q.added, client)
}

func (q *recordingQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.added
	q.added = nil
	return out
}

// replanEnv is a replanner on a real SQLite store, with acme's policy
// nightWindow and a fake clock standing at 22:00 UTC on a Monday.
type replanEnv struct {
	t     *testing.T
	clock *clock.Fake
	db    *sqlite.DB
	r     *replanner
	// wakes records the clients the replanner's timers added.
	wakes *recordingQueue
	// reg holds the replanner's metrics.
	reg *prometheus.Registry
}

var replanStart = time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)

func newReplanEnv(t *testing.T, st func(*sqlite.DB) replanStore) *replanEnv {
	t.Helper()
	return newReplanEnvWith(t, nightWindow, st)
}

// newReplanEnvWith is newReplanEnv with acme's policy from files.
func newReplanEnvWith(t *testing.T, files map[string][]byte, st func(*sqlite.DB) replanStore) *replanEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), storeFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fleet, err := loader.New(loader.Options{}).LoadFiles(ctx, files, "c0ffee")
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet.Problems) > 0 {
		t.Fatalf("test policy has problems: %v", fleet.Problems)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(replanStart)
	e := &replanEnv{t: t, clock: clk, db: db, wakes: &recordingQueue{}}
	var s replanStore = db
	if st != nil {
		s = st(db)
	}
	e.reg = prometheus.NewRegistry()
	e.r = newReplanner(clk, slog.New(slog.NewTextHandler(io.Discard, nil)), s,
		staticPolicy{"acme": {revision: "c0ffee", client: fleet.Clients["acme"]}},
		metrics.New(e.reg), key, e.wakes)
	e.r.notify = func(...string) {}
	t.Cleanup(e.r.stop)
	return e
}

// report enrolls endpoint and stores its report of a missing critical
// update, seen now.
func (e *replanEnv) report(endpoint string) {
	e.t.Helper()
	ctx := context.Background()
	now := e.clock.Now()
	if err := e.db.Enroll(ctx, store.Enrollment{ID: endpoint, Client: "acme", Hostname: endpoint, NodeKeyHash: []byte("h"), EnrolledAt: now}); err != nil && !errors.Is(err, store.ErrConflict) {
		e.t.Fatal(err)
	}
	err := e.db.ReplaceInventory(ctx, store.Report{Endpoint: endpoint, Hostname: endpoint, OS: protocol.OS{Family: "windows"}, At: now, Seq: now.UnixNano(),
		Updates: []*protocol.Update{{ID: "KB1", Source: "windows-update", Name: "KB1", Version: "1", Category: "security", Severity: "critical", Released: now.Add(-48 * time.Hour)}}})
	if err != nil {
		e.t.Fatal(err)
	}
}

func TestReplanWakesWhenTheWindowOpens(t *testing.T) {
	e := newReplanEnv(t, nil)
	q := e.wakes
	e.report("acme-ws-1")
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	due, err := e.db.DueJobs(context.Background(), "acme-ws-1", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 0 {
		t.Fatalf("%d jobs at 22:00, outside the 02:00 window", len(due))
	}
	// The window opens at 02:00; the timer is wakeSlack after it.
	e.clock.Advance(4 * time.Hour)
	if got := q.take(); len(got) != 0 {
		t.Fatalf("re-plan of %v at 02:00, before the slack", got)
	}
	e.clock.Advance(wakeSlack)
	if got := q.take(); len(got) != 1 || got[0] != "acme" {
		t.Fatalf("at 02:00:01 the timers queued %v, want [acme]", got)
	}
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	due, err = e.db.DueJobs(context.Background(), "acme-ws-1", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 {
		t.Fatalf("%d jobs due once the window opened, want 1", len(due))
	}
}

// TestReportsSettleIntoOneReplan: the reports of many endpoints of a
// client arriving together cost one re-plan, reportSettle after the first.
func TestReportsSettleIntoOneReplan(t *testing.T) {
	e := newReplanEnv(t, nil)
	for range 50 {
		e.r.replanSoon("acme")
	}
	e.r.replanSoon("globex")
	e.clock.Advance(reportSettle - time.Millisecond)
	if got := e.wakes.take(); len(got) != 0 {
		t.Fatalf("re-planned %v before the reports settled", got)
	}
	e.clock.Advance(time.Millisecond)
	if got := e.wakes.take(); len(got) != 2 {
		t.Fatalf("after the reports settled: re-plans of %v, want acme and globex once each", got)
	}
	e.r.replanSoon("acme")
	e.clock.Advance(reportSettle)
	if got := e.wakes.take(); len(got) != 1 {
		t.Fatalf("a later report: re-plans of %v, want acme once", got)
	}
}

// TestStaleEndpointWakesItsClient: a client with nothing else to wait for
// is re-planned when an endpoint that went quiet turns stale.
func TestStaleEndpointWakesItsClient(t *testing.T) {
	e := newReplanEnv(t, nil)
	e.report("acme-ws-1")
	e.clock.Advance(4 * time.Hour) // inside the window: the job is created at once
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	e.wakes.take()
	// The job's window closes at 04:00 (a wake), then nothing until the
	// endpoint, last seen at 22:00 the day before, turns stale after 3d.
	e.clock.Advance(2*time.Hour + wakeSlack)
	if got := e.wakes.take(); len(got) != 1 {
		t.Fatalf("at the window's end: re-plans %v, want acme", got)
	}
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	stale := replanStart.Add(72*time.Hour + wakeSlack)
	for {
		next, ok := e.clock.Next()
		if !ok {
			t.Fatal("no timer armed: the endpoint turning stale would go unnoticed")
		}
		if next.After(stale) {
			t.Fatalf("next timer at %v, after the endpoint turns stale at %v", next, stale)
		}
		e.clock.Advance(next.Sub(e.clock.Now()))
		if len(e.wakes.take()) == 0 {
			t.Fatal("a timer fired without re-planning acme")
		}
		if err := e.r.reconcile(context.Background(), "acme"); err != nil {
			t.Fatal(err)
		}
		if !e.clock.Now().Before(stale) {
			break
		}
	}
	st := e.r.statuses()
	if len(st) != 1 || st[0].Stale != 1 {
		t.Fatalf("status after the endpoint went quiet for 3d: %+v, want 1 stale endpoint", st)
	}
}

// failingStore fails ClientSnapshot while fail is set.
type failingStore struct {
	*sqlite.DB
	mu   sync.Mutex // guards fail
	fail error
}

func (s *failingStore) ClientSnapshot(ctx context.Context, client string, now time.Time) (*protocol.Snapshot, error) {
	s.mu.Lock()
	err := s.fail
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.DB.ClientSnapshot(ctx, client, now)
}

// TestFailedReplanIsVisibleAndRetried: a re-plan that fails returns its
// error (the queue retries it after a backoff), the client's status shows
// it beside the figures of the last good re-plan, and the next good
// re-plan clears it.
func TestFailedReplanIsVisibleAndRetried(t *testing.T) {
	var fs *failingStore
	e := newReplanEnv(t, func(db *sqlite.DB) replanStore {
		fs = &failingStore{DB: db}
		return fs
	})
	e.report("acme-ws-1")
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.fail = errors.New("disk I/O error")
	fs.mu.Unlock()
	err := e.r.reconcile(context.Background(), "acme")
	if err == nil || !strings.Contains(err.Error(), "disk I/O error") {
		t.Fatalf("reconcile with a failing store: error %v, want the store's", err)
	}
	st := e.r.statuses()
	if len(st) != 1 || !strings.Contains(st[0].Error, "disk I/O error") || !st[0].ErrorAt.Equal(e.clock.Now()) || st[0].Endpoints != 1 {
		t.Fatalf("status after the failure: %+v, want the error, its time and the last good figures", st)
	}
	fs.mu.Lock()
	fs.fail = nil
	fs.mu.Unlock()
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	if st := e.r.statuses(); st[0].Error != "" || !st[0].ErrorAt.IsZero() {
		t.Errorf("status after a good re-plan still shows %q", st[0].Error)
	}
}

// TestStopDisarmsEveryTimer: after stop no timer is armed and none can be.
func TestStopDisarmsEveryTimer(t *testing.T) {
	e := newReplanEnv(t, nil)
	e.report("acme-ws-1")
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	e.r.replanSoon("globex")
	if e.clock.Pending() == 0 {
		t.Fatal("no timer armed before stop")
	}
	e.r.stop()
	e.r.replanSoon("acme")
	e.r.wakeAt("acme", e.clock.Now().Add(time.Hour))
	if n := e.clock.Pending(); n != 0 {
		t.Errorf("%d timers armed after stop", n)
	}
}
