package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func testRecordResult(t *testing.T, s *suite) {
	ok := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultSucceeded, Output: "installed"}}
	for _, tc := range []struct {
		name     string
		endpoint string
		job      func(store.Job) string
		results  []store.UpdateResult
		before   func(*testing.T, Store, store.Job) // runs before the result
		wantDup  bool
		wantErr  error
		// wantAttempts is the number of attempts recorded for KB1 in the end.
		wantAttempts int
		// wantAudit is the detail of the job-result audit entry, if any.
		wantAudit string
	}{
		{name: "first result is recorded", endpoint: "ep-1", results: ok, wantAttempts: 1, wantAudit: `{"succeeded":1,"failed":0,"refused":0}`},
		{
			name: "second copy from the outbox is a duplicate and changes nothing", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db Store, j store.Job) {
				if rec, err := db.RecordResult(context.Background(), j.ID, "ep-1", ok, t0); rec.Duplicate || err != nil {
					t.Fatalf("first copy: %+v, error %v", rec, err)
				}
			},
			wantDup: true, wantAttempts: 1, wantAudit: `{"succeeded":1,"failed":0,"refused":0}`,
		},
		{name: "result from another endpoint is refused as not found", endpoint: "ep-2", results: ok, wantErr: store.ErrNotFound},
		{name: "result from an endpoint never enrolled is refused as not found", endpoint: "ep-9", results: ok, wantErr: store.ErrNotFound},
		{name: "result for an unknown job", endpoint: "ep-1", results: ok, job: func(store.Job) string { return "no-such-job" }, wantErr: store.ErrNotFound},
		{
			name: "result for an update the job does not contain", endpoint: "ep-1",
			results: []store.UpdateResult{ok[0], {Update: "KB2", Result: protocol.ResultSucceeded}}, wantErr: store.ErrInvalid,
		},
		{
			name: "result with an unknown outcome", endpoint: "ep-1",
			results: []store.UpdateResult{{Update: "KB1", Result: "maybe"}}, wantErr: store.ErrInvalid,
		},
		{
			name: "late result for an expired job is still recorded", endpoint: "ep-1", results: ok,
			before: func(t *testing.T, db Store, j store.Job) {
				if n, err := db.ExpireJobs(context.Background(), j.NotAfter); n != 1 || err != nil {
					t.Fatalf("expire: %d, %v", n, err)
				}
			},
			wantAttempts: 1, wantAudit: `{"succeeded":1,"failed":0,"refused":0,"expired":true}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := s.open(t)
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
			var details []string
			for _, e := range auditOf(t, db) {
				if e.Kind == protocol.AuditJobResult {
					details = append(details, string(e.Detail))
				}
			}
			var want []string
			if tc.wantAudit != "" {
				want = []string{tc.wantAudit}
			}
			if diff := cmp.Diff(want, details); diff != "" {
				t.Errorf("job-result audit details (-want +got):\n%s", diff)
			}
		})
	}
}

func testRevisions(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	fleetA := store.Revision{Hash: "aaaa", Status: store.RevisionApplied, At: at(1)}
	fleetB := store.Revision{Hash: "bbbb", Status: store.RevisionRefused, At: at(2), Reason: "verify"}
	acmeA := store.Revision{Hash: "aaaa", Status: store.RevisionApplied, At: at(1), Client: "acme"}
	acmeC := store.Revision{Hash: "cccc", Status: store.RevisionApplied, At: at(3), Client: "acme"}
	globexB := store.Revision{Hash: "bbbb", Status: store.RevisionRefused, At: at(2), Client: "globex", Reason: "invalid",
		Problems: []string{"exclusion KB1: expiry missing", "ring broad: soak 'x' is not a duration"}}
	for _, r := range []store.Revision{fleetA, acmeA, fleetB, globexB, acmeC} {
		if err := db.RecordRevisions(ctx, []store.Revision{r}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := store.RevisionStatus{
		Clients: []store.ClientRevisions{
			{Client: "", LastApplied: &fleetA, LastAttempted: fleetB},
			{Client: "acme", LastApplied: &acmeC, LastAttempted: acmeC},
			{Client: "globex", LastAttempted: globexB},
		},
		Refused: []store.Revision{globexB, fleetB},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}
	limited, err := db.Revisions(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Revision{globexB}, limited.Refused); diff != "" {
		t.Errorf("one refused revision (-want +got):\n%s", diff)
	}
	none, err := db.Revisions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Refused) != 0 || len(none.Clients) != 3 {
		t.Errorf("revisions without refused ones: %+v", none)
	}

	// A refusal's reason is kept with it, and its audit entry says it
	// with the problems.
	var kinds []protocol.AuditKind
	details := map[string]string{}
	for _, e := range auditOf(t, db) {
		kinds = append(kinds, e.Kind)
		if e.Kind == protocol.AuditRevisionRefused {
			details[e.Client] = string(e.Detail)
		}
	}
	wantDetails := map[string]string{
		"":       `{"reason":"verify"}`,
		"globex": `{"reason":"invalid","problems":["exclusion KB1: expiry missing","ring broad: soak 'x' is not a duration"]}`,
	}
	if diff := cmp.Diff(wantDetails, details); diff != "" {
		t.Errorf("refusal audit details by client (-want +got):\n%s", diff)
	}
	wantKinds := []protocol.AuditKind{protocol.AuditRevisionApplied, protocol.AuditRevisionApplied, protocol.AuditRevisionRefused, protocol.AuditRevisionRefused, protocol.AuditRevisionApplied}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("audit kinds (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		r    store.Revision
	}{
		{"revision without hash", store.Revision{Status: store.RevisionApplied, At: t0}},
		{"revision without time", store.Revision{Hash: "dddd", Status: store.RevisionApplied}},
		{"revision with an unknown status", store.Revision{Hash: "dddd", Status: "pending", At: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.RecordRevisions(ctx, []store.Revision{tc.r}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("RecordRevisions = %v, want ErrInvalid", err)
			}
		})
	}
}

func testRevisionsEmpty(t *testing.T, s *suite) {
	db := s.open(t)
	got, err := db.Revisions(context.Background(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(store.RevisionStatus{Clients: []store.ClientRevisions{}, Refused: []store.Revision{}}, got); diff != "" {
		t.Errorf("revisions of a new store (-want +got):\n%s", diff)
	}
}

// testRecordRevisionsAllOrNothing: one commit applied to many clients is
// one transaction; a bad entry stores none of them.
func testRecordRevisionsAllOrNothing(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	good := []store.Revision{
		{Hash: "abc", Status: store.RevisionApplied, At: at, Client: "acme"},
		{Hash: "abc", Status: store.RevisionApplied, At: at, Client: "globex"},
		{Hash: "abc", Status: store.RevisionApplied, At: at},
	}
	bad := append(append([]store.Revision(nil), good...), store.Revision{Hash: "abc", Status: "maybe", At: at, Client: "initech"})
	if err := db.RecordRevisions(ctx, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a batch with a bad status: %v, want ErrInvalid", err)
	}
	if st, err := db.Revisions(ctx, 10); err != nil || len(st.Clients) != 0 {
		t.Fatalf("after a refused batch: %+v, %v; want nothing stored", st, err)
	}
	if err := db.RecordRevisions(ctx, good); err != nil {
		t.Fatal(err)
	}
	st, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Clients) != 3 {
		t.Errorf("clients with a revision: %+v, want 3", st.Clients)
	}
	if entries := auditOf(t, db); len(entries) != 3 {
		t.Errorf("audit entries: %d, want 3", len(entries))
	}
}

func testAudit(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	entries := []protocol.AuditEntry{
		{At: t0, Kind: protocol.AuditHalt, Client: "acme", Revision: "aaaa", Detail: json.RawMessage(`{"ring":"pilot","update":"KB1","failureRate":0.4}`)},
		{At: t0.Add(time.Minute), Kind: protocol.AuditResume, Client: "acme", Revision: "bbbb"},
		{At: t0.Add(2 * time.Minute), Kind: protocol.AuditHalt, Client: "globex", Revision: "bbbb", Endpoint: "ep-1", Job: "job-1"},
	}
	for _, e := range entries {
		if err := db.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(entries) {
		t.Fatalf("audit holds %d entries, want %d", len(all), len(entries))
	}
	// Ids are the store's: they only have to grow.
	for i := range entries {
		if i > 0 && all[i].ID <= all[i-1].ID {
			t.Errorf("entry %d has id %d after %d: ids must grow", i, all[i].ID, all[i-1].ID)
		}
		entries[i].ID = all[i].ID
	}
	if diff := cmp.Diff(entries, all); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name    string
		afterID int64
		limit   int
		want    []protocol.AuditEntry
	}{
		{"first page", 0, 2, entries[:2]},
		{"next page", entries[1].ID, 2, entries[2:]},
		{"past the end", entries[2].ID, 2, nil},
		{"from before the first id", -1, 1, entries[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Audit(ctx, tc.afterID, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, equateEmpty); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}

	for _, tc := range []struct {
		name string
		e    protocol.AuditEntry
	}{
		{"entry without kind", protocol.AuditEntry{At: t0}},
		{"entry without time", protocol.AuditEntry{Kind: protocol.AuditHalt}},
		{"detail that is not JSON", protocol.AuditEntry{At: t0, Kind: protocol.AuditHalt, Detail: json.RawMessage(`{ring`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.AppendAudit(ctx, tc.e); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("AppendAudit = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := db.Audit(ctx, 0, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Audit with limit 0 = %v, want ErrInvalid", err)
	}
	if got := auditOf(t, db); len(got) != len(entries) {
		t.Errorf("refused entries were appended: %d entries, want %d", len(got), len(entries))
	}
}
