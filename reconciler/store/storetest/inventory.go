package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func testEnroll(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	e := store.Enrollment{ID: "ep-1", Client: "acme", Hostname: "reception-pc", NodeKeyHash: []byte{1, 2, 3}, EnrolledAt: t0}
	if err := db.Enroll(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := db.EndpointByID(ctx, "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("EndpointByID (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		e    store.Enrollment
		want error
	}{
		{"same endpoint enrolling twice", e, store.ErrConflict},
		{"same endpoint enrolling twice for another client", store.Enrollment{ID: "ep-1", Client: "globex", NodeKeyHash: []byte{9}, EnrolledAt: t0}, store.ErrConflict},
		{"endpoint without id", store.Enrollment{Client: "acme", NodeKeyHash: []byte{1}, EnrolledAt: t0}, store.ErrInvalid},
		{"endpoint without client", store.Enrollment{ID: "ep-2", NodeKeyHash: []byte{1}, EnrolledAt: t0}, store.ErrInvalid},
		{"endpoint without node key", store.Enrollment{ID: "ep-2", Client: "acme", EnrolledAt: t0}, store.ErrInvalid},
		{"endpoint without enrollment time", store.Enrollment{ID: "ep-2", Client: "acme", NodeKeyHash: []byte{1}}, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.Enroll(ctx, tc.e); !errors.Is(err, tc.want) {
				t.Errorf("Enroll = %v, want %v", err, tc.want)
			}
		})
	}
	if got, err := db.EndpointByID(ctx, "ep-1"); err != nil || got.Client != "acme" {
		t.Errorf("after a second enrollment: %+v, %v; want the first one kept", got, err)
	}
	if _, err := db.EndpointByID(ctx, "ep-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndpointByID of unknown endpoint = %v, want ErrNotFound", err)
	}
	var kinds []protocol.AuditKind
	for _, a := range auditOf(t, db) {
		kinds = append(kinds, a.Kind)
	}
	if diff := cmp.Diff([]protocol.AuditKind{protocol.AuditEnroll}, kinds); diff != "" {
		t.Errorf("audit after one enrollment and refused ones (-want +got):\n%s", diff)
	}
}

func testReplaceInventory(t *testing.T, s *suite) {
	t1, t2, t3 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	type result struct {
		job     string // key of the job created before the result
		updates []string
		results []store.UpdateResult
		at      time.Time
	}
	for _, tc := range []struct {
		name    string
		reports []store.Report
		results []result // recorded after the first report
		wantErr error    // of the last report
		// want is the endpoint's updates after all steps; InFlightJob and
		// Attempts[].Job are compared only for presence.
		want []*protocol.Update
	}{
		{
			name:    "update already installed in the endpoint's first report has no install time (onboarding)",
			reports: []store.Report{report("ep-1", t1, kb("KB5001", true))},
			want:    []*protocol.Update{kb("KB5001", true)},
		},
		{
			name:    "update installed between two reports gets the time of the report that shows it",
			reports: []store.Report{report("ep-1", t1, kb("KB5001", false)), report("ep-1", t2, kb("KB5001", true))},
			want:    []*protocol.Update{withInstalledAt(kb("KB5001", true), t2)},
		},
		{
			name: "installed update keeps its installed time on later reports",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false)),
				report("ep-1", t2, kb("KB5001", true)),
				report("ep-1", t3, kb("KB5001", true), kb("KB5002", false)),
			},
			want: []*protocol.Update{withInstalledAt(kb("KB5001", true), t2), kb("KB5002", false)},
		},
		{
			name: "update reported uninstalled loses its installed time",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false)),
				report("ep-1", t2, kb("KB5001", true)),
				report("ep-1", t3, kb("KB5001", false)),
			},
			want: []*protocol.Update{kb("KB5001", false)},
		},
		{
			name: "agent's own installed time and attempts are ignored",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false)),
				report("ep-1", t2, withAttempts(withInstalledAt(kb("KB5001", true), t0.Add(-time.Hour)))),
			},
			want: []*protocol.Update{withInstalledAt(kb("KB5001", true), t2)},
		},
		{
			name: "an update whose source gives no release time is released when the fleet first saw it",
			reports: []store.Report{
				report("ep-1", t1, undated(deb("openssl", "3.0.15-1", "3.0.14-1"))),
				report("ep-1", t2, undated(deb("openssl", "3.0.15-1", "3.0.14-1")), undated(deb("curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u7"))),
			},
			want: []*protocol.Update{
				firstSeenAt(undated(deb("curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u7")), t2),
				firstSeenAt(undated(deb("openssl", "3.0.15-1", "3.0.14-1")), t1),
			},
		},
		{
			name: "first seen is the fleet's: another endpoint saw the update first",
			reports: []store.Report{
				report("ep-2", t1, undated(deb("openssl", "3.0.15-1", "3.0.14-1"))),
				report("ep-1", t2, undated(deb("openssl", "3.0.15-1", "3.0.14-1"))),
			},
			want: []*protocol.Update{firstSeenAt(undated(deb("openssl", "3.0.15-1", "3.0.14-1")), t1)},
		},
		{
			name: "a vendor date given later replaces the first-seen time",
			reports: []store.Report{
				report("ep-1", t1, undated(deb("openssl", "3.0.15-1", "3.0.14-1"))),
				report("ep-1", t2, deb("openssl", "3.0.15-1", "3.0.14-1")),
			},
			want: []*protocol.Update{deb("openssl", "3.0.15-1", "3.0.14-1")},
		},
		{
			name: "update no longer reported is gone from the snapshot",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false), deb("openssl", "3.0.15-1", "3.0.14-1")),
				report("ep-1", t2, deb("openssl", "3.0.15-1", "3.0.14-1")),
			},
			want: []*protocol.Update{deb("openssl", "3.0.15-1", "3.0.14-1")},
		},
		{
			name:    "job success marks the update installed at the result time and a later report keeps it",
			reports: []store.Report{report("ep-1", t1, kb("KB5001", false)), report("ep-1", t3, kb("KB5001", true))},
			results: []result{{job: "k1", updates: []string{"KB5001"}, at: t2,
				results: []store.UpdateResult{{Update: "KB5001", Result: protocol.ResultSucceeded, At: t2}}}},
			want: []*protocol.Update{withAttempt(withInstalledAt(kb("KB5001", true), t2), t2, protocol.ResultSucceeded, "")},
		},
		{
			name: "failed attempts survive the update leaving and coming back",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false)),
				report("ep-1", t2),
				report("ep-1", t3, kb("KB5001", false)),
			},
			results: []result{{job: "k1", updates: []string{"KB5001"}, at: t1.Add(time.Minute),
				results: []store.UpdateResult{{Update: "KB5001", Result: protocol.ResultFailed, Error: "0x800f0922"}}}},
			want: []*protocol.Update{withAttempt(kb("KB5001", false), t1.Add(time.Minute), protocol.ResultFailed, "0x800f0922")},
		},
		{
			name: "older report is refused and changes nothing",
			reports: []store.Report{
				report("ep-1", t2, kb("KB5001", true)),
				report("ep-1", t1, kb("KB5001", false)),
			},
			wantErr: store.ErrConflict,
			want:    []*protocol.Update{kb("KB5001", true)},
		},
		{
			name: "a late copy of an earlier report arrives after a newer one and is refused",
			reports: []store.Report{
				numbered(report("ep-1", t1, kb("KB5001", false)), 7),
				numbered(report("ep-1", t2, kb("KB5001", true)), 8),
				numbered(report("ep-1", t3, kb("KB5001", false)), 7),
			},
			wantErr: store.ErrConflict,
			want:    []*protocol.Update{withInstalledAt(kb("KB5001", true), t2)},
		},
		{
			name: "repeated report is stored again",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", true)),
				report("ep-1", t1, kb("KB5001", true)),
			},
			want: []*protocol.Update{kb("KB5001", true)},
		},
		{
			name: "changed details of a stored update replace the old ones",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", false), deb("openssl", "3.0.15-1", "3.0.14-1", "libssl3@3.0.15-1")),
				report("ep-1", t2, revised(kb("KB5001", false)), deb("openssl", "3.0.15-1", "3.0.13-1")),
			},
			want: []*protocol.Update{firstSeenAt(revised(kb("KB5001", false)), t2), deb("openssl", "3.0.15-1", "3.0.13-1")},
		},
		{
			name: "a new update and a removed one in the same report",
			reports: []store.Report{
				report("ep-1", t1, kb("KB5001", true), kb("KB5002", false)),
				report("ep-1", t2, kb("KB5001", true), kb("KB5003", false)),
			},
			want: []*protocol.Update{kb("KB5001", true), kb("KB5003", false)},
		},
		{
			name:    "same update twice in one report is invalid",
			reports: []store.Report{report("ep-1", t1, kb("KB5001", true), kb("KB5001", false))},
			wantErr: store.ErrInvalid,
			want:    []*protocol.Update{},
		},
		{
			name:    "report without a time is invalid",
			reports: []store.Report{report("ep-1", time.Time{}, kb("KB5001", true))},
			wantErr: store.ErrInvalid,
			want:    []*protocol.Update{},
		},
		{
			name:    "report from an endpoint never enrolled",
			reports: []store.Report{report("ep-9", t1, kb("KB5001", true))},
			wantErr: store.ErrNotFound,
			want:    []*protocol.Update{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := s.open(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
			enroll(t, db, "ep-2", "acme")
			var err error
			for i, r := range tc.reports {
				err = db.ReplaceInventory(ctx, r)
				if i < len(tc.reports)-1 && err != nil {
					t.Fatalf("report %d: %v", i, err)
				}
				if i == 0 {
					for _, res := range tc.results {
						j := createJobs(t, db, "acme", t1, newJob("ep-1", "acme", res.job, res.updates...))
						if _, err := db.RecordResult(ctx, j[0].ID, "ep-1", res.results, res.at); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("last report: error %v, want %v", err, tc.wantErr)
			}
			got, err := db.EndpointSnapshot(ctx, "ep-1", t3)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range got.Updates {
				for i := range u.Attempts {
					if u.Attempts[i].Job == "" {
						t.Errorf("update %s: attempt %d has no job id", u.ID, i)
					}
					u.Attempts[i].Job = ""
				}
			}
			if diff := cmp.Diff(vendorDated(tc.want), got.Updates, equateEmpty); diff != "" {
				t.Errorf("updates (-want +got):\n%s", diff)
			}
		})
	}
}

// testJobSeqFromFirstReport: the job number a report carries (the
// highest its agent has seen) counts on the endpoint's first report after
// it enrolled, which numbers its next job above it; any later report's
// number is ignored, so an endpoint cannot move its own numbers. An
// endpoint deleted and enrolled again starts over: its agent kept the
// numbers it saw, and its first report says so.
func testJobSeqFromFirstReport(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	first := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k0", "KB1"))
	if first[0].Seq != 1 {
		t.Fatalf("first job has sequence %d, want 1", first[0].Seq)
	}
	at := t0
	step := func(name string, jobSeq, want int64) {
		t.Helper()
		at = at.Add(time.Minute)
		r := report("ep-1", at, kb("KB1", false))
		r.JobSeq = jobSeq
		replace(t, db, r)
		if j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-"+name, "KB1")); j[0].Seq != want {
			t.Errorf("%s (job sequence %d): next job numbered %d, want %d", name, jobSeq, j[0].Seq, want)
		}
	}
	step("the first report after enrolling", 41, 42)
	step("a later report far above the store", 1<<40, 43)
	step("a later report behind the store", 7, 44)
	step("a later report that does not say", 0, 45)

	if _, err := db.DeleteEndpoint(ctx, "ep-1", "ops", at); err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "ep-1", "acme")
	step("the first report after enrolling again", 2, 3)
	step("the report after that", 50, 4)
}

// testRaiseJobSeq: RaiseJobSeq (the refusal of an open job) numbers the
// endpoint's next job above what its agent saw, whatever its reports
// said; a lower number changes nothing.
func testRaiseJobSeq(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	replace(t, db, report("ep-1", t0, kb("KB1", false)))
	createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-first", "KB1"))
	if err := db.RaiseJobSeq(ctx, "ep-1", 99); err != nil {
		t.Fatal(err)
	}
	if err := db.RaiseJobSeq(ctx, "ep-1", 50); err != nil {
		t.Fatal(err)
	}
	if seqs, err := db.LastJobSeqs(ctx, "acme"); err != nil || seqs["ep-1"] != 99 {
		t.Errorf("LastJobSeqs after raising to 99 and then 50: %v, %v; want ep-1 at 99", seqs, err)
	}
	if j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-raised", "KB1")); j[0].Seq != 100 {
		t.Errorf("after raising to 99: next job numbered %d, want 100", j[0].Seq)
	}
	if err := db.RaiseJobSeq(ctx, "ep-9", 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("raise for an unknown endpoint: %v, want not found", err)
	}
}

// testDuplicateReport: a copy of the stored report (same number), arriving
// after a job installed one of its updates, changes nothing: the update
// stays installed. Applying the copy again would make the controller plan
// the update as missing.
func testDuplicateReport(t *testing.T, s *suite) {
	db := s.open(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	first := numbered(report("ep-1", t0, kb("KB1", false)), 1)
	replace(t, db, first)
	jobs := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k1", "KB1"))
	ok := []store.UpdateResult{{Update: "KB1", Result: protocol.ResultSucceeded}}
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-1", ok, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	late := first
	late.At = t0.Add(2 * time.Minute)
	if err := db.ReplaceInventory(ctx, late); err != nil {
		t.Fatalf("a duplicate report is acknowledged, not refused: %v", err)
	}
	ep, err := db.EndpointSnapshot(ctx, "ep-1", t0.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Updates) != 1 || !ep.Updates[0].Installed {
		t.Errorf("after the duplicate: %+v, want KB1 installed", ep.Updates)
	}
	if !ep.LastSeen.Equal(t0) {
		t.Errorf("LastSeen = %v, want the first report's %v (the copy changed nothing)", ep.LastSeen, t0)
	}
}
