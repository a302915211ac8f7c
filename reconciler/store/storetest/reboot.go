package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// testRebootState: the reboot state of an endpoint's last report is in
// the snapshot as reported; a later report without one (an agent that
// predates it, or one with no reboot planned) clears it; the results of
// deferred-by-guard and hook-failed are recorded as attempts.
func testRebootState(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-win", "acme")
	state := &protocol.RebootState{Mode: protocol.RebootPrompt, PendingSince: t0.Add(-time.Hour).UTC(), DeferralsUsed: 1,
		ScheduledAt: t0.Add(20 * time.Hour).UTC()}
	r := numbered(report("ep-win", t0, kb("KB5002", false), kb("KB5003", false)), 1)
	r.RebootPending, r.Reboot = true, state
	replace(t, db, r)
	ep, err := db.EndpointSnapshot(ctx, "ep-win", t0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(state, ep.Reboot); diff != "" {
		t.Errorf("reboot state in the snapshot (-want +got):\n%s", diff)
	}
	snap, err := db.ClientSnapshot(ctx, "acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Endpoints) != 1 || !cmp.Equal(state, snap.Endpoints[0].Reboot) {
		t.Errorf("client snapshot endpoints = %+v, want ep-win with reboot state %+v", snap.Endpoints, state)
	}

	jobs := createJobs(t, db, "acme", t0.Add(time.Minute), newJob("ep-win", "acme", "acme/ep-win/1", "KB5002", "KB5003"))
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-win", []store.UpdateResult{
		{Update: "KB5002", Result: protocol.ResultDeferredByGuard, Error: "ehr.exe kept running", At: t0.Add(2 * time.Minute)},
		{Update: "KB5003", Result: protocol.ResultHookFailed, Error: "pre script exited 1", At: t0.Add(2 * time.Minute)},
	}, t0.Add(3*time.Minute)); err != nil {
		t.Fatalf("RecordResult with deferred-by-guard and hook-failed: %v", err)
	}

	replace(t, db, numbered(report("ep-win", t0.Add(time.Hour), kb("KB5002", false), kb("KB5003", false)), 2))
	ep, err = db.EndpointSnapshot(ctx, "ep-win", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ep.Reboot != nil {
		t.Errorf("reboot state after a report without one = %+v, want none", ep.Reboot)
	}
	got := map[string]protocol.Result{}
	for _, u := range ep.Updates {
		for _, a := range u.Attempts {
			got[u.ID] = a.Result
		}
	}
	if want := map[string]protocol.Result{"KB5002": protocol.ResultDeferredByGuard, "KB5003": protocol.ResultHookFailed}; !cmp.Equal(want, got) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
}

// testRollbackResult: the result of a rollback job records attempts with
// the rollback action, and a succeeded rollback leaves the update not
// installed; a failed one leaves it installed.
func testRollbackResult(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-win", "acme")
	replace(t, db, numbered(report("ep-win", t0, withInstalledAt(kb("KB5002", true), t0.Add(-time.Hour)), kb("KB5003", true)), 1))
	j := newJob("ep-win", "acme", "acme/ep-win/rollback", "KB5002", "KB5003")
	j.Action = protocol.ActionRollback
	jobs := createJobs(t, db, "acme", t0.Add(time.Minute), j)
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-win", []store.UpdateResult{
		{Update: "KB5002", Result: protocol.ResultSucceeded, At: t0.Add(2 * time.Minute)},
		{Update: "KB5003", Result: protocol.ResultFailed, Error: "0x80070005", At: t0.Add(2 * time.Minute)},
	}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ep, err := db.EndpointSnapshot(ctx, "ep-win", t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		Installed bool
		Action    string
		Result    protocol.Result
	}
	got := map[string]state{}
	for _, u := range ep.Updates {
		s := state{Installed: u.Installed}
		if n := len(u.Attempts); n > 0 {
			s.Action, s.Result = u.Attempts[n-1].Action, u.Attempts[n-1].Result
		}
		got[u.ID] = s
	}
	want := map[string]state{
		"KB5002": {Installed: false, Action: protocol.ActionRollback, Result: protocol.ResultSucceeded},
		"KB5003": {Installed: true, Action: protocol.ActionRollback, Result: protocol.ResultFailed},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the rollback's result (-want +got):\n%s", diff)
	}
	created := false
	for _, e := range auditOf(t, db) {
		if e.Kind == protocol.AuditJobCreated && e.Job == jobs[0].ID {
			created = strings.Contains(string(e.Detail), `"action":"rollback"`)
		}
	}
	if !created {
		t.Errorf("no job-created audit entry of job %s saying it is a rollback", jobs[0].ID)
	}
}
