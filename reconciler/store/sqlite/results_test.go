package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestRecordResult(t *testing.T) {
	ok := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultSucceeded, Output: "installed"}}
	for _, tc := range []struct {
		name     string
		endpoint string
		job      func(store.Job) string
		results  []store.UpdateResult
		before   func(*testing.T, *DB, store.Job) // runs before the result
		wantDup  bool
		wantErr  error
		// wantAttempts is the number of attempts recorded for KB1 in the end.
		wantAttempts int
	}{
		{name: "first result is recorded", endpoint: "ep-1", results: ok, wantAttempts: 1},
		{
			name: "second copy from the outbox is a duplicate and changes nothing", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db *DB, j store.Job) {
				if rec, err := db.RecordResult(context.Background(), j.ID, "ep-1", ok, t0); rec.Duplicate || err != nil {
					t.Fatalf("first copy: %+v, error %v", rec, err)
				}
			},
			wantDup: true, wantAttempts: 1,
		},
		{name: "result from another endpoint is refused as not found", endpoint: "ep-2", results: ok, wantErr: store.ErrNotFound},
		{name: "result for an unknown job", endpoint: "ep-1", results: ok, job: func(store.Job) string { return "no-such-job" }, wantErr: store.ErrNotFound},
		{
			name: "result for an update the job does not contain", endpoint: "ep-1",
			results: []store.UpdateResult{{Update: "KB2", Result: protocol.ResultSucceeded}}, wantErr: store.ErrInvalid,
		},
		{
			name: "result with an unknown outcome", endpoint: "ep-1",
			results: []store.UpdateResult{{Update: "KB1", Result: "maybe"}}, wantErr: store.ErrInvalid,
		},
		{
			name: "late result for an expired job is still recorded", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db *DB, j store.Job) {
				if n, err := db.ExpireJobs(context.Background(), j.NotAfter); n != 1 || err != nil {
					t.Fatalf("expire: %d, %v", n, err)
				}
			},
			wantAttempts: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			enroll(t, db, "ep-2", "acme")
			replace(t, db, report("ep-1", t0, kb("KB1", false)))
			j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))[0]
			if tc.before != nil {
				tc.before(t, db, j)
			}
			id := j.ID
			if tc.job != nil {
				id = tc.job(j)
			}
			rec, err := db.RecordResult(ctx, id, tc.endpoint, tc.results, t0.Add(time.Minute))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("RecordResult error = %v, want %v", err, tc.wantErr)
			}
			if rec.Duplicate != tc.wantDup {
				t.Errorf("duplicate = %v, want %v", rec.Duplicate, tc.wantDup)
			}
			if err == nil && rec.Ring != j.Ring {
				t.Errorf("ring = %q, want the job's %q", rec.Ring, j.Ring)
			}
			ep, err := db.EndpointSnapshot(ctx, "ep-1", t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			u := ep.Updates[0]
			if len(u.Attempts) != tc.wantAttempts {
				t.Errorf("KB1 has %d attempts, want %d", len(u.Attempts), tc.wantAttempts)
			}
			if tc.wantAttempts > 0 && (!u.Installed || u.InstalledAt == nil) {
				t.Errorf("KB1 after a succeeded result: installed %v at %v, want installed", u.Installed, u.InstalledAt)
			}
			if tc.wantErr != nil && u.InFlightJob == nil {
				t.Errorf("refused result finished the job")
			}
		})
	}
}
