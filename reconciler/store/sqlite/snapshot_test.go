package sqlite

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// fleet sets up two clients: acme with a reporting Windows desktop and a
// Debian server, and an endpoint that enrolled but never reported; globex
// with one desktop. It returns the jobs it created: one finished with a
// failure on ep-win (acme), one still open on ep-deb (acme).
func fleet(t *testing.T, db *DB) (failed, open store.Job) {
	t.Helper()
	ctx := context.Background()
	enroll(t, db, "ep-win", "acme")
	enroll(t, db, "ep-deb", "acme")
	enroll(t, db, "ep-new", "acme")
	enroll(t, db, "ep-glx", "globex")

	replace(t, db, report("ep-win", t0.Add(time.Minute), kb("KB5002", false), kb("KB5001", true)))
	deb1 := report("ep-deb", t0.Add(2*time.Minute),
		deb("openssl", "3.0.15-1", "3.0.14-1"), deb("libssl3", "3.0.15-1", "3.0.14-1", "openssl@3.0.15-1"))
	deb1.OS = protocol.OS{Family: "linux", Version: "debian 12"}
	deb1.Labels = map[string]string{"role": "server", "site": "dc1"}
	deb1.RebootPending = true
	replace(t, db, deb1)
	replace(t, db, report("ep-glx", t0.Add(3*time.Minute), kb("KB5001", false)))

	jobs := createJobs(t, db, "acme", t0.Add(5*time.Minute),
		newJob("ep-win", "acme", "acme/ep-win/1", "KB5002"),
		newJob("ep-deb", "acme", "acme/ep-deb/1", "openssl@3.0.15-1", "libssl3@3.0.15-1"))
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-win", []store.UpdateResult{
		{Update: "KB5002", Result: protocol.ResultFailed, Error: "0x80070005", Output: "access denied", At: t0.Add(20 * time.Minute)},
	}, t0.Add(21*time.Minute)); err != nil {
		t.Fatal(err)
	}
	return jobs[0], jobs[1]
}

// wantFleet is what fleet's endpoints look like in a snapshot at now, in
// id order.
func wantFleet(failed, open store.Job, now time.Time) []*protocol.Endpoint {
	var inFlight *string
	if now.Before(open.NotAfter) {
		inFlight = &open.ID
	}
	// Every update here has the vendor's release time; KB5001 was
	// installed before ep-win first reported, so its install time is not
	// known.
	openssl := deb("openssl", "3.0.15-1", "3.0.14-1")
	openssl.InFlightJob = inFlight
	libssl := deb("libssl3", "3.0.15-1", "3.0.14-1", "openssl@3.0.15-1")
	libssl.InFlightJob = inFlight
	kb2 := kb("KB5002", false)
	kb2.Attempts = []protocol.Attempt{{At: t0.Add(20 * time.Minute), Result: protocol.ResultFailed, Error: "0x80070005", Job: failed.ID, Ring: "canary"}}
	return []*protocol.Endpoint{
		{
			ID: "ep-deb", Client: "acme", Hostname: "ep-deb.local", OS: protocol.OS{Family: "linux", Version: "debian 12"},
			Labels: map[string]string{"role": "server", "site": "dc1"}, LastSeen: t0.Add(2 * time.Minute), RebootPending: true,
			Updates: vendorDated([]*protocol.Update{libssl, openssl}),
		},
		{
			ID: "ep-glx", Client: "globex", Hostname: "ep-glx.local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
			Labels: map[string]string{"site": "hq"}, LastSeen: t0.Add(3 * time.Minute),
			Updates: vendorDated([]*protocol.Update{kb("KB5001", false)}),
		},
		{ID: "ep-new", Client: "acme", Hostname: "ep-new.local", Updates: []*protocol.Update{}},
		{
			ID: "ep-win", Client: "acme", Hostname: "ep-win.local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
			Labels: map[string]string{"site": "hq"}, LastSeen: t0.Add(time.Minute),
			Updates: vendorDated([]*protocol.Update{kb("KB5001", true), kb2}),
		},
	}
}

func TestSnapshot(t *testing.T) {
	db, _ := openTest(t)
	failed, open := fleet(t, db)
	ctx := context.Background()
	during, after := t0.Add(time.Hour), t0.Add(3*time.Hour)

	all := wantFleet(failed, open, during)
	for _, tc := range []struct {
		name string
		get  func() (*protocol.Snapshot, error)
		want *protocol.Snapshot
	}{
		{
			name: "whole fleet while a job is open",
			get:  func() (*protocol.Snapshot, error) { return db.Snapshot(ctx, during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: all},
		},
		{
			name: "whole fleet after the open job's window closed",
			get:  func() (*protocol.Snapshot, error) { return db.Snapshot(ctx, after) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: after, Endpoints: wantFleet(failed, open, after)},
		},
		{
			name: "one client",
			get:  func() (*protocol.Snapshot, error) { return db.ClientSnapshot(ctx, "acme", during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: []*protocol.Endpoint{all[0], all[2], all[3]}},
		},
		{
			name: "client without endpoints",
			get:  func() (*protocol.Snapshot, error) { return db.ClientSnapshot(ctx, "initech", during) },
			want: &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: during, Endpoints: []*protocol.Endpoint{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("snapshot (-want +got):\n%s", diff)
			}
		})
	}

	for _, want := range all {
		t.Run("endpoint "+want.ID, func(t *testing.T) {
			got, err := db.EndpointSnapshot(ctx, want.ID, during)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("endpoint snapshot (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := db.EndpointSnapshot(ctx, "ep-unknown", during); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("snapshot of unknown endpoint: %v, want ErrNotFound", err)
	}
}

// TestRestartKeepsEverything closes the store and opens the same file again:
// what a controller restart sees.
func TestRestartKeepsEverything(t *testing.T) {
	db, path := openTest(t)
	failed, open := fleet(t, db)
	ctx := context.Background()
	if err := db.RecordRevision(ctx, store.Revision{Hash: "c0ffee", Status: store.RevisionApplied, At: t0}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	before, err := db.Snapshot(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	auditBefore, err := db.Audit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	revsBefore, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	auditAfter, err := db.Audit(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(auditBefore, auditAfter); diff != "" {
		t.Errorf("audit changed across restart (-before +after):\n%s", diff)
	}
	revsAfter, err := db.Revisions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revsBefore, revsAfter); diff != "" {
		t.Errorf("revisions changed across restart (-before +after):\n%s", diff)
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
}

// TestSnapshotQueriesUseIndexes checks the query plans behind snapshots: a
// client's or an endpoint's snapshot reads only its rows (no table scan),
// and no snapshot query sorts, so one endpoint's snapshot costs the same in
// a fleet of ten or ten thousand.
func TestSnapshotQueriesUseIndexes(t *testing.T) {
	db, _ := openTest(t)
	type query func(scope) (string, []any)
	queries := map[string]query{
		"endpoints": scope.endpointsQuery,
		"updates":   scope.updatesQuery,
		"attempts":  scope.attemptsQuery,
		"in-flight": func(s scope) (string, []any) { return s.inFlightQuery(t0) },
	}
	for _, sc := range []struct {
		name      string
		s         scope
		scanFleet bool
	}{
		{"whole fleet", scope{}, true},
		{"one client", scope{client: "acme"}, false},
		{"one endpoint", scope{endpoint: "ep-1"}, false},
	} {
		for name, q := range queries {
			t.Run(sc.name+"/"+name, func(t *testing.T) {
				sqlText, args := q(sc.s)
				rows, err := db.read.Query("EXPLAIN QUERY PLAN "+sqlText, args...)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var plan []string
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					plan = append(plan, detail)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				for _, step := range plan {
					if strings.Contains(step, "TEMP B-TREE") || (!sc.scanFleet && strings.HasPrefix(step, "SCAN")) {
						t.Errorf("query plan step %q; plan:\n%s", step, strings.Join(plan, "\n"))
					}
				}
			})
		}
	}
}
