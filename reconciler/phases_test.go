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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/gittest"
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
		repoDir: up.Work, queue: q, policy: make(map[string]appliedClient),
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
	r.apply(ctx, plumbing.NewHash(second))
	if running(r, "acme") != first {
		t.Errorf("acme runs %s after a commit the store could not record, want %s", running(r, "acme"), first)
	}
	if v := r.view(); !strings.Contains(v.lastErr, "disk is full") || v.refused != nil {
		t.Errorf("status after the failed record: error %q, refused %+v; want the store's error, no refusal", v.lastErr, v.refused)
	}
	if got := q.take(); len(got) != 0 {
		t.Errorf("a commit that was not recorded queued %v", got)
	}
	st.setFail(false)
	r.apply(ctx, plumbing.NewHash(second))
	if running(r, "acme") != second || running(r, "globex") != second {
		t.Fatalf("on the next fetch acme runs %s, globex %s; want %s", running(r, "acme"), running(r, "globex"), second)
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
