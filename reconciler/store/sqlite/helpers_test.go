package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// t0 is the test clock's start: a Tuesday morning.
var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// openTest opens a fresh store in a temporary directory and returns it with
// its file path; the store is closed when the test ends.
func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "patchd.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func enroll(t testing.TB, db *DB, id, client string) {
	t.Helper()
	err := db.Enroll(context.Background(), store.Enrollment{
		ID: id, Client: client, Hostname: id + ".local", NodeKeyHash: []byte("hash-" + id), EnrolledAt: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newJob is a planned job for endpoint with key, open until t0+2h.
func newJob(endpoint, client, key string, updates ...string) store.Job {
	return store.Job{Job: plan.Job{
		Endpoint: endpoint, Client: client, Ring: "canary", Updates: updates,
		NotAfter: t0.Add(2 * time.Hour), Reboot: schema.RebootIfRequired, RebootDeadline: "4h",
		Revision: "c0ffee", IdempotencyKey: key,
	}}
}

// number does what the controller does before it stores jobs: it gives
// each job an id and the next sequence number of its endpoint, and signs
// it (here the payload names the job, the signature the payload).
func number(t testing.TB, db *DB, client string, jobs []store.Job) []store.Job {
	t.Helper()
	out, err := numberedJobs(db, client, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// numberedJobs is number for goroutines other than the test's.
func numberedJobs(db *DB, client string, jobs []store.Job) ([]store.Job, error) {
	last, err := db.LastJobSeqs(context.Background(), client)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(jobs)
	for i := range out {
		j := &out[i]
		last[j.Endpoint]++
		j.ID, j.Seq = fmt.Sprintf("job-%s-%d", j.Endpoint, last[j.Endpoint]), last[j.Endpoint]
		j.Payload = fmt.Appendf(nil, "%s/%s/%d", j.Endpoint, j.ID, j.Seq)
		j.Signature = append([]byte("sig:"), j.Payload...)
	}
	return out, nil
}

// createJobs numbers and stores jobs of client.
func createJobs(t testing.TB, db *DB, client string, now time.Time, jobs ...store.Job) []store.Job {
	t.Helper()
	created, err := db.CreateJobs(context.Background(), client, number(t, db, client, jobs), now)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// kb is a Windows update as an agent reports it.
func kb(id string, installed bool) *protocol.Update {
	return &protocol.Update{
		ID: id, Source: "windows-update", Name: id, Title: "Cumulative update " + id, Version: "1",
		Category: "security", Severity: "critical", CVSS: 9.8, CVEs: []string{"CVE-2026-0001", "CVE-2026-0002"},
		KnownExploited: true, Released: t0.Add(-72 * time.Hour), RebootRequired: true, Installed: installed,
	}
}

// deb is a Debian package version as an agent reports it.
func deb(name, version, installedVersion string, requires ...string) *protocol.Update {
	return &protocol.Update{
		ID: name + "@" + version, Source: "apt", Name: name, Version: version, InstalledVersion: installedVersion,
		Category: "bugfix", Released: t0.Add(-24 * time.Hour), Requires: requires,
	}
}

func report(endpoint string, at time.Time, updates ...*protocol.Update) store.Report {
	return store.Report{
		Endpoint: endpoint, Hostname: endpoint + ".local", OS: protocol.OS{Family: "windows", Version: "11 24H2"},
		Labels: map[string]string{"site": "hq"}, At: at, Updates: updates,
	}
}

func replace(t testing.TB, db *DB, r store.Report) {
	t.Helper()
	if err := db.ReplaceInventory(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}
