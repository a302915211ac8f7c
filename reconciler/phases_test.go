package reconciler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema/loader"
)

// acmeApprovesCritical makes critical security updates desired for acme.
const acmeApprovesCritical = `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "America/Chicago"}
baseline: approve: [{name: "critical", category: ["security"], minSeverity: "critical"}]
`

// flakyRevisionStore fails RecordRevisions while fail is set.
type flakyRevisionStore struct {
	*sqlite.DB
	mu   sync.Mutex // guards fail
	fail bool
}

func (s *flakyRevisionStore) RecordRevisions(ctx context.Context, rs []store.Revision) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return errors.New("database or disk is full")
	}
	return s.DB.RecordRevisions(ctx, rs)
}

func (s *flakyRevisionStore) setFail(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = v
}

// newRevisionsEnv is revisions following a real Git repository (the
// upstream's working clone), on a real SQLite store that can be made to
// fail.
func newRevisionsEnv(t *testing.T) (*revisions, *gittest.Upstream, *flakyRevisionStore, *recordingQueue) {
	t.Helper()
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("testdata/fleet")
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), storeFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &flakyRevisionStore{DB: db}
	q := &recordingQueue{}
	r := &revisions{
		clock: clock.NewFake(replanStart), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		store: st, loader: loader.New(loader.Options{}), metrics: metrics.New(prometheus.NewRegistry()),
		repoDir: up.Work, queue: q, policy: make(map[string]appliedClient), lastRefusal: make(map[string]store.Revision),
	}
	return r, up, st, q
}

func running(r *revisions, client string) string {
	p, ok := r.Policy(client)
	if !ok {
		return ""
	}
	return p.revision
}

// TestApplyPhases: what each phase's outcome does to the policy that runs,
// the status and the queue.
func TestApplyPhases(t *testing.T) {
	ctx := context.Background()
	r, up, st, q := newRevisionsEnv(t)

	first := up.Commit("Start the fleet").String()
	r.apply(ctx, plumbing.NewHash(first))
	if running(r, "acme") != first || running(r, "globex") != first {
		t.Fatalf("after the first commit acme runs %q, globex %q; want %s", running(r, "acme"), running(r, "globex"), first)
	}
	if got := q.take(); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"acme", "globex"}) {
		t.Errorf("first commit queued %v, want acme and globex", got)
	}

	// The store cannot record the revision: nothing changes, the error
	// shows, and the same head is applied once the store is back.
	up.Write(map[string]string{"clients/acme/policy.cue": acmeApprovesCritical})
	second := up.Commit("Approve critical updates for acme").String()
	st.setFail(true)
	err := r.apply(ctx, plumbing.NewHash(second))
	if err == nil || !strings.Contains(err.Error(), "could not record: database or disk is full") {
		t.Errorf("apply of a commit the store could not record = %v, want could not record: the store's error", err)
	}
	if running(r, "acme") != first {
		t.Errorf("acme runs %s after a commit the store could not record, want %s", running(r, "acme"), first)
	}
	if v := r.view(); v.refused != nil || v.lastErr != "" {
		t.Errorf("status after the failed record: fetch error %q, refused %+v; want neither", v.lastErr, v.refused)
	}
	if got := q.take(); len(got) != 0 {
		t.Errorf("a commit that was not recorded queued %v", got)
	}
	st.setFail(false)
	if err := r.apply(ctx, plumbing.NewHash(second)); err != nil {
		t.Fatal(err)
	}
	if running(r, "acme") != second || running(r, "globex") != second {
		t.Fatalf("when tried again acme runs %s, globex %s; want %s", running(r, "acme"), running(r, "globex"), second)
	}
	if got := q.take(); !slices.Equal(got, []string{"acme"}) {
		t.Errorf("a commit to acme's files queued %v, want only acme", got)
	}

	// A broken client is refused alone; globex moves on.
	up.Write(map[string]string{"clients/acme/policy.cue": acmeApprovesCritical + "baseline: approve: [{name: 3}]\n"})
	third := up.Commit("Break acme").String()
	r.apply(ctx, plumbing.NewHash(third))
	if running(r, "acme") != second || running(r, "globex") != third {
		t.Errorf("after breaking acme: acme runs %s (want %s), globex %s (want %s)", running(r, "acme"), second, running(r, "globex"), third)
	}
	if v := r.view(); v.refused == nil || v.refused.Client != "acme" || v.refused.Revision != third {
		t.Errorf("refusal after breaking acme: %+v", v.refused)
	}

	// A broken shared file refuses the whole commit, which is remembered
	// and not tried again.
	up.Write(map[string]string{"fleet.cue": "package fleet\n\nwindows: {\n"})
	fourth := up.Commit("Break the shared file").String()
	r.apply(ctx, plumbing.NewHash(fourth))
	if running(r, "globex") != third {
		t.Errorf("globex runs %s after a refused commit, want %s", running(r, "globex"), third)
	}
	v := r.view()
	if v.refused == nil || v.refused.Client != "" || v.refused.Revision != fourth || v.head.String() != fourth {
		t.Fatalf("after the broken shared file: refused %+v, head %s", v.refused, v.head)
	}
	revs, err := st.Revisions(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs.Refused) != 2 || revs.Refused[0].Hash != fourth || revs.Refused[1].Client != "acme" {
		t.Errorf("refusals recorded: %+v", revs.Refused)
	}
}

// TestRefusalSurvivesRestart: after a restart the last refusal still says
// why (its reason), and the refused head, judged again, is not recorded
// or audited again: the same verdict is one audit entry, however often
// patchd restarts.
func TestRefusalSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	r, up, st, _ := newRevisionsEnv(t)
	first := up.Commit("Start the fleet")
	if err := r.apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	up.Write(map[string]string{"fleet.cue": "package fleet\n\nwindows: {\n"})
	broken := up.Commit("Break the shared file")
	if err := r.apply(ctx, broken); err != nil {
		t.Fatal(err)
	}
	want := r.view().refused
	if want == nil || want.Reason != "invalid" {
		t.Fatalf("refusal before the restart: %+v, want reason invalid", want)
	}
	audited := func() int {
		t.Helper()
		entries, err := st.Audit(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if e.Kind == protocol.AuditRevisionRefused {
				n++
			}
		}
		return n
	}
	for restart := range 3 {
		restarted, _, _, _ := newRevisionsEnv(t)
		restarted.store, restarted.repoDir = st, r.repoDir
		if err := restarted.restore(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, restarted.view().refused); diff != "" {
			t.Errorf("restart %d: refusal (-before +after):\n%s", restart, diff)
		}
		// The watch reports the branch head again after every start.
		if err := restarted.apply(ctx, broken); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, restarted.view().refused); diff != "" {
			t.Errorf("restart %d: refusal once judged again (-before +after):\n%s", restart, diff)
		}
		if n := audited(); n != 1 {
			t.Errorf("restart %d: %d revision-refused audit entries, want 1", restart, n)
		}
	}
}

// TestRefusalTheStoreCannotRecordIsRetried: a verdict is never lost to a
// failing store: the refusal is returned as an error (follow tries the
// head again) and recorded once the store takes it.
func TestRefusalTheStoreCannotRecordIsRetried(t *testing.T) {
	ctx := context.Background()
	r, up, st, _ := newRevisionsEnv(t)
	if err := r.apply(ctx, up.Commit("Start the fleet")); err != nil {
		t.Fatal(err)
	}
	up.Write(map[string]string{"fleet.cue": "package fleet\n\nwindows: {\n"})
	broken := up.Commit("Break the shared file")
	st.setFail(true)
	if err := r.apply(ctx, broken); err == nil || !strings.Contains(err.Error(), "could not record the refusal") {
		t.Errorf("apply while the store fails = %v, want could not record the refusal", err)
	}
	if v := r.view(); v.refused != nil || v.head == broken {
		t.Errorf("a refusal not recorded shows: refused %+v, head %s", v.refused, v.head)
	}
	st.setFail(false)
	if err := r.apply(ctx, broken); err != nil {
		t.Fatal(err)
	}
	revs, err := st.Revisions(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs.Refused) != 1 || revs.Refused[0].Hash != broken.String() || revs.Refused[0].Reason != "invalid" {
		t.Errorf("refusals recorded: %+v", revs.Refused)
	}
}
