package sqlite

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestEnroll(t *testing.T) {
	db, _ := openTest(t)
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
		{"endpoint without client", store.Enrollment{ID: "ep-2", NodeKeyHash: []byte{1}, EnrolledAt: t0}, store.ErrInvalid},
		{"endpoint without node key", store.Enrollment{ID: "ep-2", Client: "acme", EnrolledAt: t0}, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.Enroll(ctx, tc.e); !errors.Is(err, tc.want) {
				t.Errorf("Enroll = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := db.EndpointByID(ctx, "ep-unknown"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndpointByID of unknown endpoint = %v, want ErrNotFound", err)
	}
}

func TestReplaceInventory(t *testing.T) {
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
			name:    "report from an endpoint never enrolled",
			reports: []store.Report{report("ep-9", t1, kb("KB5001", true))},
			wantErr: store.ErrNotFound,
			want:    []*protocol.Update{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := openTest(t)
			ctx := context.Background()
			enroll(t, db, "ep-1", "acme")
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

func withInstalledAt(u *protocol.Update, at time.Time) *protocol.Update {
	u.InstalledAt = &at
	return u
}

func withAttempts(u *protocol.Update) *protocol.Update {
	u.Attempts = []protocol.Attempt{{At: t0, Result: protocol.ResultFailed, Job: "agent-made-up"}}
	u.InFlightJob = ptr("agent-made-up")
	return u
}

func withAttempt(u *protocol.Update, at time.Time, r protocol.Result, msg string) *protocol.Update {
	u.Attempts = append(u.Attempts, protocol.Attempt{At: at, Result: r, Error: msg, Ring: "canary"})
	return u
}

// revised is u as its vendor re-released it: every detail but the id
// changed, lists and the release date emptied.
// undated is u as a source that gives no release time reports it.
func undated(u *protocol.Update) *protocol.Update {
	u.Released = time.Time{}
	return u
}

// firstSeenAt is u as the store gives it back when the fleet first saw it
// at t and its source gave no release time.
func firstSeenAt(u *protocol.Update, t time.Time) *protocol.Update {
	u.Released, u.ReleasedFrom = t, protocol.ReleasedFirstSeen
	return u
}

// vendorDated marks the release time of each of us that has one and no
// origin as the vendor's, as the store does.
func vendorDated(us []*protocol.Update) []*protocol.Update {
	for _, u := range us {
		if !u.Released.IsZero() && u.ReleasedFrom == "" {
			u.ReleasedFrom = protocol.ReleasedByVendor
		}
	}
	return us
}

func revised(u *protocol.Update) *protocol.Update {
	u.Source, u.Name, u.Title, u.Version, u.InstalledVersion = "winget", u.Name+"-v2", "Revised "+u.Title, "2", "1"
	u.Category, u.Severity, u.CVSS, u.CVEs, u.KnownExploited = "feature", "low", 3.1, nil, false
	u.Released, u.RebootRequired, u.Requires = time.Time{}, false, nil
	return u
}

// numbered gives a report its agent's sequence number.
func numbered(r store.Report, seq int64) store.Report {
	r.Seq = seq
	return r
}

// TestReportMovesJobNumbersOnlyWhenUnknown: a report's job number moves
// the endpoint's numbers only while the store cannot know them: the first
// report after the endpoint enrolled (its agent may have seen numbers
// under an earlier enrollment) and the first after a restore from a
// backup (the jobs created since are not in the store). Any other report
// moves nothing, however high its number: an endpoint cannot push its own
// numbers around.
func TestReportMovesJobNumbersOnlyWhenUnknown(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	enroll(t, db, "ep-1", "acme")
	at := t0
	reportSeen := func(db *DB, jobSeq int64) {
		t.Helper()
		at = at.Add(time.Minute)
		r := report("ep-1", at, kb("KB1", false))
		r.JobSeq = jobSeq
		replace(t, db, r)
	}
	nextJob := func(db *DB, key string) int64 {
		t.Helper()
		return createJobs(t, db, "acme", t0, newJob("ep-1", "acme", key, "KB1"))[0].Seq
	}
	reportSeen(db, 41) // the first report after enrolling: its agent had seen 41
	for i, tc := range []struct {
		name   string
		jobSeq int64
		want   int64
	}{
		{"after the enrolling report", 41, 42},
		{"a report far above the store", 1 << 40, 43},
		{"an agent behind the store", 7, 44},
		{"an agent that does not say", 0, 45},
	} {
		if i > 0 {
			reportSeen(db, tc.jobSeq)
		}
		if got := nextJob(db, fmt.Sprint("k-", i)); got != tc.want {
			t.Errorf("%s: next job numbered %d, want %d", tc.name, got, tc.want)
		}
	}

	// Restored from a backup taken now, the agent having seen 60 since:
	// its first report moves the numbers past 60, the next ones do not.
	backup := saveBackup(t, db)
	db.Close()
	if _, err := Restore(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	restored, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	reportSeen(restored, 60)
	if got := nextJob(restored, "k-restored"); got != 61 {
		t.Errorf("after a restore and a report of 60: next job numbered %d, want 61", got)
	}
	reportSeen(restored, 1<<40)
	if got := nextJob(restored, "k-restored-2"); got != 62 {
		t.Errorf("a second report after the restore moved the numbers: next job %d, want 62", got)
	}
}

// TestRefusalMovesJobNumbers: RaiseJobSeq (the refusal of an open job)
// numbers the endpoint's next job above what its agent saw.
func TestRefusalMovesJobNumbers(t *testing.T) {
	db, _ := openTest(t)
	enroll(t, db, "ep-1", "acme")
	createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-first", "KB1"))
	// A result says the same.
	if err := db.RaiseJobSeq(context.Background(), "ep-1", 99); err != nil {
		t.Fatal(err)
	}
	if err := db.RaiseJobSeq(context.Background(), "ep-1", 50); err != nil {
		t.Fatal(err)
	}
	if j := createJobs(t, db, "acme", t0, newJob("ep-1", "acme", "k-raised", "KB1")); j[0].Seq != 100 {
		t.Errorf("after raising to 99: next job numbered %d, want 100", j[0].Seq)
	}
	if err := db.RaiseJobSeq(context.Background(), "ep-9", 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("raise for an unknown endpoint: %v, want not found", err)
	}
}
