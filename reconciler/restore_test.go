package reconciler

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/proctest"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema/loader"
)

// childLoader evaluates in child processes of this test binary (TestMain
// serves them) with timeout.
func childLoader(t *testing.T, timeout time.Duration) *loader.Loader {
	t.Helper()
	ev, err := loader.SelfEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	return loader.New(loader.Options{Evaluator: ev, Timeout: timeout})
}

// TestRestoreRefusesEachClientThatCannotBeEvaluated: after a restart, a
// client whose last applied revision runs past the limits, or cannot be
// read, is refused on its own with the reason; the other clients are
// restored within the limits; nothing fails the start; and a commit that
// loads the refused client brings it back.
func TestRestoreRefusesEachClientThatCannotBeEvaluated(t *testing.T) {
	ctx := context.Background()
	// Long enough for a healthy client in a race-detector build on a busy
	// machine.
	const timeout = 5 * time.Second
	r, up, st, _ := newRevisionsEnv(t)
	r.loader = childLoader(t, timeout)

	up.Write(map[string]string{
		"clients/evil/policy.cue":  proctest.RunawayPolicy("evil"),
		"clients/evil2/policy.cue": proctest.RunawayPolicy("evil2"),
	})
	head := up.Commit("Two runaway clients").String()
	r.apply(ctx, plumbing.NewHash(head))
	if running(r, "acme") != head || running(r, "evil") != "" {
		t.Fatalf("before the restart acme runs %q, evil %q; want %s and nothing", running(r, "acme"), running(r, "evil"), head)
	}
	// The runaways' revision counts as applied for them (as if an older
	// controller, or higher limits, had let it through), and initech's
	// applied revision is gone from the repository.
	now := r.clock.Now()
	if err := st.RecordRevisions(ctx, []store.Revision{
		{Hash: head, Status: store.RevisionApplied, At: now, Client: "evil"},
		{Hash: head, Status: store.RevisionApplied, At: now, Client: "evil2"},
		{Hash: strings.Repeat("0123", 10), Status: store.RevisionApplied, At: now, Client: "initech"},
	}); err != nil {
		t.Fatal(err)
	}

	restarted, _, _, q := newRevisionsEnv(t)
	restarted.store, restarted.repoDir, restarted.loader = st, r.repoDir, childLoader(t, timeout)
	start := time.Now()
	if err := restarted.restore(ctx); err != nil {
		t.Fatalf("restore: %v", err)
	}
	took := time.Since(start)
	t.Logf("restored in %v with two runaways (deadline %v)", took, timeout)
	if took > timeout+5*time.Second {
		t.Errorf("restore took %v, want the runaways killed at their deadline (%v)", took, timeout)
	}
	tests := []struct {
		client string
		// refused is a part of the reason shown; "" for a client restored.
		refused string
	}{
		{"acme", ""},
		{"globex", ""},
		{"evil", "clients/evil/policy.cue:1:1: evaluation exceeded 5s"},
		{"evil2", "clients/evil2/policy.cue:1:1: evaluation exceeded 5s"},
		{"initech", "resolve revision"},
	}
	for _, tt := range tests {
		p, ok := restarted.Policy(tt.client)
		switch {
		case !ok:
			t.Errorf("%s: no policy after the restart; a client is never dropped for a revision that does not evaluate", tt.client)
		case tt.refused == "" && (p.client == nil || p.revision != head):
			t.Errorf("%s: restored at %s (loaded %v, refused %q), want %s", tt.client, p.revision, p.client != nil, p.refused, head)
		case tt.refused != "" && (p.client != nil || len(p.refused) != 1 || !strings.Contains(p.refused[0], tt.refused)):
			t.Errorf("%s: loaded %v, refused %q; want refused for %q", tt.client, p.client != nil, p.refused, tt.refused)
		}
	}
	if got, want := slices.Sorted(slices.Values(q.take())), []string{"acme", "evil", "evil2", "globex", "initech"}; !slices.Equal(got, want) {
		t.Errorf("restore queued %v, want %v", got, want)
	}
	revs, err := st.Revisions(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range revs.Clients {
		if cr.Client == "evil" && (cr.LastApplied == nil || cr.LastApplied.Hash != head) {
			t.Errorf("evil's stored record changed: %+v", cr)
		}
	}
	proctest.NoChildLeft(t)

	// A commit that fixes evil loads it; evil2 stays refused.
	up.Write(map[string]string{"clients/evil/policy.cue": "package fleet\n\nclient: {id: \"evil\", name: \"Reformed\", timezone: \"UTC\"}\n"})
	fixed := up.Commit("Fix evil").String()
	restarted.apply(ctx, plumbing.NewHash(fixed))
	if p, _ := restarted.Policy("evil"); p.client == nil || p.revision != fixed {
		t.Errorf("after the fix evil runs %s (loaded %v), want %s", p.revision, p.client != nil, fixed)
	}
	if p, _ := restarted.Policy("evil2"); p.client != nil || p.revision != head {
		t.Errorf("after the fix evil2 runs %s (loaded %v), want still refused at %s", p.revision, p.client != nil, head)
	}
	if got := slices.Sorted(slices.Values(q.take())); !slices.Contains(got, "evil") || !slices.Contains(got, "evil2") {
		t.Errorf("the fix queued %v, want evil (loaded) and evil2 (refused)", got)
	}
	proctest.NoChildLeft(t)
}

// TestClientRefusedAtStartIsShownNotPlanned: a client whose policy did not
// load at start is shown as refused, with why, not as an unknown client,
// and gets no plan: no job, and no timer (a plan would arm one for the
// night window).
func TestClientRefusedAtStartIsShownNotPlanned(t *testing.T) {
	e := newReplanEnv(t, nil)
	why := []string{"clients/acme/policy.cue:1:1: evaluation exceeded 10s; simplify comprehensions and disjunctions"}
	e.r.policy = staticPolicy{"acme": {revision: "c0ffee", refused: why}}
	e.report("acme-ws-1")
	if err := e.r.reconcile(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	st := e.r.statuses()
	if len(st) != 1 || !st[0].Known || st[0].Revision != "c0ffee" || !slices.Equal(st[0].Refused, why) || st[0].Error != "" {
		t.Errorf("status %+v, want acme known, at c0ffee, refused for %q", st, why)
	}
	seqs, err := e.db.LastJobSeqs(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	for ep, seq := range seqs {
		if seq != 0 {
			t.Errorf("job %d created for %s, of a client refused at start", seq, ep)
		}
	}
	if n := e.clock.Pending(); n != 0 {
		t.Errorf("%d timers armed for a client refused at start", n)
	}
}

// TestEvaluatorThatCannotRunIsRetried: when the policy evaluator cannot
// start, the commit is not refused (that is no verdict on it): the error
// is returned (follow shows the head as pending) and the same head is
// tried again.
func TestEvaluatorThatCannotRunIsRetried(t *testing.T) {
	ctx := context.Background()
	r, up, _, _ := newRevisionsEnv(t)
	r.loader = loader.New(loader.Options{Evaluator: &loader.Command{Path: filepath.Join(t.TempDir(), "missing")}})
	head := up.Commit("Start the fleet")
	err := r.apply(ctx, head)
	if v := r.view(); v.refused != nil || err == nil || !strings.Contains(err.Error(), loader.ErrEvaluator.Error()) || running(r, "acme") != "" {
		t.Fatalf("with no evaluator: refused %+v, error %v, acme runs %q; want the error and nothing refused", v.refused, err, running(r, "acme"))
	}
	r.loader = childLoader(t, loader.DefaultTimeout)
	if err := r.apply(ctx, head); err != nil {
		t.Fatal(err)
	}
	if running(r, "acme") != head.String() {
		t.Errorf("once the evaluator runs, acme runs %q, want %s", running(r, "acme"), head)
	}
}
