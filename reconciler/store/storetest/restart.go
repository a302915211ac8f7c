package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/reconciler/store"
)

// testRestart closes the store and opens it again: what a controller
// restart sees. Everything is as it was, and job numbers go on from where
// they were.
func testRestart(t *testing.T, s *suite) {
	if s.reopen == nil {
		t.Skip("the store was given no Reopen")
	}
	db := s.open(t)
	failed, open := fleet(t, db)
	ctx := context.Background()
	if err := db.RecordRevisions(ctx, []store.Revision{
		{Hash: "c0ffee", Status: store.RevisionApplied, At: t0},
		{Hash: "badbad", Status: store.RevisionRefused, At: t0, Reason: "invalid", Problems: []string{"fleet.cue:1:1: oops"}},
	}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	before, err := db.Snapshot(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	auditBefore := auditOf(t, db)
	revsBefore, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	seqsBefore, err := db.LastJobSeqs(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = s.reopen(t, db)
	after, err := db.Snapshot(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("snapshot changed across restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(wantFleet(failed, open, now), after.Endpoints); diff != "" {
		t.Errorf("snapshot after restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(auditBefore, auditOf(t, db)); diff != "" {
		t.Errorf("audit changed across restart (-before +after):\n%s", diff)
	}
	revsAfter, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revsBefore, revsAfter); diff != "" {
		t.Errorf("revisions changed across restart (-before +after):\n%s", diff)
	}
	if len(revsAfter.Refused) != 1 || revsAfter.Refused[0].Reason != "invalid" {
		t.Errorf("refused revisions after restart: %+v, want badbad refused as invalid", revsAfter.Refused)
	}
	seqsAfter, err := db.LastJobSeqs(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(seqsBefore, seqsAfter); diff != "" {
		t.Errorf("job numbers changed across restart (-before +after):\n%s", diff)
	}
	due, err := db.DueJobs(ctx, "ep-deb", now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Job{open}, due); diff != "" {
		t.Errorf("due jobs after restart (-want +got):\n%s", diff)
	}
	// The job that finished before the restart is still finished.
	if rec, err := db.RecordResult(ctx, failed.ID, "ep-win", nil, now); err != nil || !rec.Duplicate {
		t.Errorf("result for a job finished before the restart: %+v, error %v; want a duplicate", rec, err)
	}
	// Numbers go on from where they were.
	if got := createJobs(t, db, "acme", now, newJob("ep-deb", "acme", "acme/ep-deb/2", "openssl@3.0.15-1")); got[0].Seq != seqsBefore["ep-deb"]+1 {
		t.Errorf("after restart ep-deb's next job got sequence %d, want %d", got[0].Seq, seqsBefore["ep-deb"]+1)
	}
}

// testSecondHandle: a second handle on the same store (a replica, or a
// restarted controller overlapping the old one during a handover) sees
// what the first wrote, and refuses to reuse its keys and numbers.
func testSecondHandle(t *testing.T, s *suite) {
	hs := s.handles(t, 2)
	a, b := hs[0], hs[1]
	ctx := context.Background()
	enroll(t, a, "ep-1", "acme")
	if err := b.Enroll(ctx, store.Enrollment{ID: "ep-1", Client: "acme", NodeKeyHash: []byte("x"), EnrolledAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("enrolling again through the second handle: %v, want ErrConflict", err)
	}
	stale := number(t, b, "acme", []store.Job{newJob("ep-1", "acme", "k0", "KB0")})
	createJobs(t, a, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
	if _, err := b.CreateJobs(ctx, "acme", stale, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second handle storing a job numbered before the first handle's: %v, want ErrConflict", err)
	}
	got := createJobs(t, b, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"), newJob("ep-1", "acme", "k2", "KB2"))
	if len(got) != 1 || got[0].IdempotencyKey != "k2" || got[0].Seq != 3 {
		t.Errorf("second handle created %+v, want only k2, with the sequence 3 it was numbered", got)
	}
	due, err := a.DueJobs(ctx, "ep-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].IdempotencyKey != "k1" || due[1].IdempotencyKey != "k2" {
		t.Errorf("first handle's due jobs: %+v, want k1 and k2", due)
	}
}
