package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// t0 is the test clock's start: a Tuesday morning.
var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// equateEmpty makes nil and empty lists and maps equal in comparisons.
var equateEmpty = cmpopts.EquateEmpty()

func enroll(t testing.TB, db Store, id, client string) {
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
func number(t testing.TB, db Store, client string, jobs []store.Job) []store.Job {
	t.Helper()
	out, err := numberedJobs(db, client, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// numberedJobs is number for goroutines other than the test's. Job ids
// carry the endpoint and the number, so two writers that number the same
// job alike give it the same id.
func numberedJobs(db Store, client string, jobs []store.Job) ([]store.Job, error) {
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
func createJobs(t testing.TB, db Store, client string, now time.Time, jobs ...store.Job) []store.Job {
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

func replace(t testing.TB, db Store, r store.Report) {
	t.Helper()
	if err := db.ReplaceInventory(context.Background(), r); err != nil {
		t.Fatal(err)
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

// revised is u as its vendor re-released it: every detail but the id
// changed, lists and the release date emptied.
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

func ptr[T any](v T) *T { return &v }

// auditOf returns the whole audit log of db.
func auditOf(t testing.TB, db Store) []protocol.AuditEntry {
	t.Helper()
	var all []protocol.AuditEntry
	after := int64(0)
	for {
		page, err := db.Audit(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
}

// auditJobs returns the job ids of db's audit entries of kind, in log
// order.
func auditJobs(t testing.TB, db Store, kind protocol.AuditKind) []string {
	t.Helper()
	var jobs []string
	for _, e := range auditOf(t, db) {
		if e.Kind == kind {
			jobs = append(jobs, e.Job)
		}
	}
	return jobs
}
