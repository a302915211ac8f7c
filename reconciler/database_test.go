package reconciler_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

// onPostgres makes a harness's controller keep its store in a new
// PostgreSQL database, signing with a key of its own.
func onPostgres(t *testing.T) func(h *harness) {
	return func(h *harness) {
		key, err := signingkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		h.cfg.Database, h.cfg.SigningKey = pgtest.DB(t), key
	}
}

// TestControllerOnPostgreSQL: with its store in PostgreSQL, patchd enrolls
// an agent with the key it was given, plans and delivers a signed job,
// records its result; restarted with a new data directory (a replica
// taking over, or a new machine) it keeps every revision, endpoint,
// result, job number and audit entry, because the data directory holds
// none of them. A patchd with another key is refused, and a backup is
// answered with what to use instead.
func TestControllerOnPostgreSQL(t *testing.T) {
	h := newHarness(t, onPostgres(t))
	key := h.cfg.SigningKey
	rev := h.push(map[string]string{"clients/acme/policy.cue": approveCritical}, "Approve critical security updates")
	h.waitFor("the revision", func(st protocol.Status) bool { return appliedFor(st, "acme") == rev })

	a, code := h.enroll("acme", acmeSecret, "ACME-WS-001")
	if code != 200 || !a.pub.Equal(key.Public()) {
		t.Fatalf("enroll: %d, signing key %x; want the key given, %x", code, a.pub, key.Public())
	}
	if code := h.report(a, false); code != 200 {
		t.Fatalf("report: %d", code)
	}
	first := h.nextJob(a)
	if first.Seq != 1 || first.Revision != rev || len(first.Updates) != 1 || first.Updates[0].ID != "KB5034441" {
		t.Fatalf("first job: %+v", first)
	}
	h.answer(a, first, "KB5034441")
	h.report(a, true)
	h.waitFor("acme compliant", func(st protocol.Status) bool { return compliant(st, "acme", 1) })

	var errBody protocol.ErrorBody
	code, body := apitest.Do(t, h.base, "GET", "/v1/backup", admin(), nil, nil)
	if err := json.Unmarshal(body, &errBody); code != http.StatusBadRequest || err != nil || errBody.Error == nil ||
		!strings.Contains(errBody.Error.Message, "pg_dump") || !strings.Contains(errBody.Error.Message, "endpoints, updates") {
		t.Errorf("GET /v1/backup: %d %s; want 400 saying to use pg_dump, naming the tables", code, body)
	}
	var audit protocol.AuditPage
	if code := h.do("GET", "/v1/audit?limit=1000", admin(), nil, &audit); code != 200 {
		t.Fatalf("audit: %d", code)
	}

	// Restarted on a new data directory: everything is in the database.
	oldDir := h.cfg.DataDir
	h.stop()
	for _, f := range []string{"patchline.db", "job-signing-key.pem"} {
		if _, err := os.Stat(filepath.Join(oldDir, f)); !os.IsNotExist(err) {
			t.Errorf("the data directory holds %s (%v): with PostgreSQL it holds the repo clone only", f, err)
		}
	}
	h.cfg.DataDir = t.TempDir()
	h.start()
	st := h.waitFor("acme restored", func(st protocol.Status) bool { return compliant(st, "acme", 1) })
	if appliedFor(st, "acme") != rev {
		t.Errorf("after the restart acme runs %q, want %s", appliedFor(st, "acme"), rev)
	}
	var snap protocol.Snapshot
	if code := h.do("GET", "/v1/state", admin(), nil, &snap); code != 200 || !snapshotHasInstalled(&snap, a.id, "KB5034441") {
		t.Errorf("state after the restart: %d, %+v; want KB5034441 installed on %s", code, snap.Endpoints, a.id)
	}
	var after protocol.AuditPage
	if code := h.do("GET", "/v1/audit?limit=1000", admin(), nil, &after); code != 200 || len(after.Entries) < len(audit.Entries) ||
		after.Entries[len(audit.Entries)-1].ID != audit.Entries[len(audit.Entries)-1].ID {
		t.Errorf("audit after the restart: %d, %d entries; want the %d before first", code, len(after.Entries), len(audit.Entries))
	}
	// The agent and its job numbers carry on: a new update gets job 2.
	second := &protocol.Update{ID: "KB5036000", Source: "windows-update", Name: "KB5036000", Title: "2026-12 Cumulative Update",
		Category: "security", Severity: "critical", CVSS: 9.1, Released: time.Now().Add(-72 * time.Hour)}
	if code := h.do("POST", protocol.PathReport, a.headers(), protocol.Report{
		Seq: 3, Hostname: "ACME-WS-001", OS: protocol.OS{Family: "windows"}, Labels: map[string]string{"ring": "canary"},
		Updates: []*protocol.Update{critical(true), second},
	}, nil); code != 200 {
		t.Fatalf("report after the restart: %d", code)
	}
	if next := h.nextJob(a); next.Seq != 2 || next.Updates[0].ID != "KB5036000" {
		t.Errorf("job after the restart: %+v, want KB5036000 numbered 2", next)
	}

	// A patchd with another key is refused: agents pin the first.
	other, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.cfg
	cfg.DataDir, cfg.SigningKey = t.TempDir(), other
	c, err := reconciler.New(context.Background(), cfg)
	if err == nil {
		c.Run(canceled())
		t.Fatal("a patchd with another signing key started")
	}
	for _, want := range []string{
		"is not the key this database's controller signs with",
		signingkey.Fingerprint(other.Public().(ed25519.PublicKey)),
		signingkey.Fingerprint(key.Public().(ed25519.PublicKey)),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
}

// nextJob long-polls for a's jobs and returns the one that comes, checked
// against the key a pinned.
func (h *harness) nextJob(a agent) protocol.JobPayload {
	h.t.Helper()
	var jobs protocol.JobsResponse
	if code := h.do("GET", protocol.PathJobs+"?wait=20s", a.headers(), nil, &jobs); code != 200 || len(jobs.Jobs) != 1 {
		h.t.Fatalf("long-poll: %d, %d jobs; want one", code, len(jobs.Jobs))
	}
	job, err := protocol.OpenJob(a.pub, jobs.Jobs[0])
	if err != nil {
		h.t.Fatalf("job signature: %v", err)
	}
	return job
}

// answer posts a's result for job: update installed.
func (h *harness) answer(a agent, job protocol.JobPayload, update string) {
	h.t.Helper()
	result := protocol.ResultRequest{Job: job.ID, IdempotencyKey: job.IdempotencyKey,
		Updates: []protocol.UpdateResult{{Update: update, Result: protocol.ResultSucceeded, At: time.Now()}}}
	var ack protocol.ResultResponse
	if code := h.do("POST", protocol.ResultPath(job.ID), a.headers(), result, &ack); code != 200 || ack.Duplicate {
		h.t.Fatalf("result: %d %+v", code, ack)
	}
}

// compliant says whether client has n compliant endpoints and none
// drifting.
func compliant(st protocol.Status, client string, n int) bool {
	for _, c := range st.Clients {
		if c.Client == client && c.Compliant == n && c.Drifting == 0 {
			return true
		}
	}
	return false
}

// canceled is a context already done: Run on it drains at once.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
