package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

// failingPatchd is a controller following a local fleet repo whose store
// writes fail while failing is set (reconciler.FailStoreWrites).
type failingPatchd struct {
	*harness
	up      *gittest.Upstream
	metrics string
	failing atomic.Bool
}

func startFailingPatchd(t *testing.T) *failingPatchd {
	t.Helper()
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("testdata/fleet")
	up.Commit("Start the fleet")
	cfg := patchdtest.Config(t, up.Work, map[string]string{"acme": acmeSecret, "globex": globexSecret})
	ctx, cancel := context.WithCancel(context.Background())
	c, err := reconciler.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &failingPatchd{harness: &harness{t: t, base: "http://" + c.Addr(), cfg: cfg}, up: up, metrics: "http://" + c.MetricsAddr()}
	reconciler.FailStoreWrites(c, func() error {
		if p.failing.Load() {
			return errors.New("database or disk is full (13)")
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	p.waitFor("the first revision", func(st protocol.Status) bool { return appliedFor(st, "acme") != "" })
	return p
}

// probe answers GET url with its status and body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	return get(t, http.DefaultClient, url)
}

// metric is the value of the exposition line starting with series.
func (p *failingPatchd) metric(series string) string {
	p.t.Helper()
	_, body := probe(p.t, p.metrics+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestStoreErrorsAreVisibleAndRecover: store writes that fail are counted
// by operation, shown in /v1/status with the error and its time, make
// /readyz answer 503 on both addresses (while /healthz stays 200), and a
// commit that cannot be recorded is pending; once writes succeed again
// the controller is ready, the pending commit is applied without a new
// fetch, and the last error stays in the status.
func TestStoreErrorsAreVisibleAndRecover(t *testing.T) {
	p := startFailingPatchd(t)
	a, code := p.enroll("acme", acmeSecret, "ACME-WS-001")
	if code != 200 {
		t.Fatalf("enroll: %d", code)
	}
	if code := p.report(a, false); code != 200 {
		t.Fatalf("report: %d", code)
	}
	for _, base := range []string{p.base, p.metrics} {
		if code, body := probe(t, base+"/readyz"); code != 200 || body != "ok\n" {
			t.Errorf("%s/readyz on a healthy store: %d %q", base, code, body)
		}
	}

	p.failing.Store(true)
	if code := p.report(a, false); code != 500 {
		t.Errorf("report while the store fails: %d, want 500 (the agent retries)", code)
	}
	for _, base := range []string{p.base, p.metrics} {
		if code, body := probe(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not ready: the store's last write failed (report, at ") {
			t.Errorf("%s/readyz while the store fails: %d %q; want 503 naming the failed write", base, code, body)
		}
		if code, body := probe(t, base+"/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("%s/healthz while the store fails: %d %q; want 200: the process serves", base, code, body)
		}
	}
	st := p.status()
	if s := st.Store; !s.Failing || s.LastErrorOp != "report" || !strings.Contains(s.LastError, "database or disk is full") || s.LastErrorAt.IsZero() || s.FailingSince.IsZero() {
		t.Errorf("store in the status while writes fail: %+v", s)
	}
	if got := p.metric(`patchline_store_errors_total{op="report"}`); got != "1" {
		t.Errorf(`patchline_store_errors_total{op="report"} = %q, want 1`, got)
	}
	if got := p.metric(`patchline_store_errors_total{op="enroll"}`); got != "0" {
		t.Errorf(`patchline_store_errors_total{op="enroll"} = %q, want 0: every op is exported from the start`, got)
	}
	if got := p.metric("patchline_store_write_failing"); got != "1" {
		t.Errorf("patchline_store_write_failing = %q, want 1", got)
	}

	p.up.Write(map[string]string{"clients/acme/policy.cue": approveCritical})
	rev := p.up.Commit("Approve critical security updates").String()
	st = p.waitFor("the commit pending", func(st protocol.Status) bool { return st.Pending != nil && st.Pending.Revision == rev })
	if !strings.Contains(st.Pending.Error, "could not record: ") || !strings.Contains(st.Pending.Error, "disk is full") {
		t.Errorf("pending: %+v; want could not record: the store's error", st.Pending)
	}
	if appliedFor(st, "acme") == rev {
		t.Error("a commit the store could not record is applied")
	}

	p.failing.Store(false)
	if code := p.report(a, false); code != 200 {
		t.Fatalf("report once the store takes writes: %d", code)
	}
	for _, base := range []string{p.base, p.metrics} {
		if code, body := probe(t, base+"/readyz"); code != 200 {
			t.Errorf("%s/readyz once a write succeeded: %d %q", base, code, body)
		}
	}
	// No new commit: the pending one is tried again by its backoff.
	st = p.waitFor("the pending commit applied", func(st protocol.Status) bool { return st.Pending == nil && appliedFor(st, "acme") == rev })
	if s := st.Store; s.Failing || s.RecoveredAt.IsZero() || s.LastErrorOp == "" || !strings.Contains(s.LastError, "disk is full") {
		t.Errorf("store in the status after recovery: %+v; want not failing, recovered, the last error kept", s)
	}
	if got := p.metric("patchline_store_write_failing"); got != "0" {
		t.Errorf("patchline_store_write_failing after recovery = %q, want 0", got)
	}
	if got := p.metric(`patchline_store_errors_total{op="revision"}`); got == "0" || got == "" {
		t.Errorf(`patchline_store_errors_total{op="revision"} = %q, want the failed records counted`, got)
	}
}

// TestHaltsAuditedOnceAcrossRestarts: a halt is one audit entry however
// often the controller restarts, and its resume one more.
func TestHaltsAuditedOnceAcrossRestarts(t *testing.T) {
	h := newHarness(t, nil)
	rev := h.push(map[string]string{"clients/acme/policy.cue": approveCritical}, "Approve critical security updates")
	h.waitFor("the revision", func(st protocol.Status) bool { return appliedFor(st, "acme") == rev })
	a, _ := h.enroll("acme", acmeSecret, "ACME-WS-001")
	h.report(a, false)
	var jobs protocol.JobsResponse
	if code := h.do("GET", protocol.PathJobs+"?wait=20s", a.headers(), nil, &jobs); code != 200 || len(jobs.Jobs) != 1 {
		t.Fatalf("long-poll: %d, %d jobs", code, len(jobs.Jobs))
	}
	job, err := protocol.OpenJob(a.pub, jobs.Jobs[0])
	if err != nil {
		t.Fatal(err)
	}
	failed := protocol.ResultRequest{Job: job.ID, IdempotencyKey: job.IdempotencyKey,
		Updates: []protocol.UpdateResult{{Update: "KB5034441", Result: protocol.ResultFailed, Error: "0x80070643", At: time.Now()}}}
	if code := h.do("POST", protocol.ResultPath(job.ID), a.headers(), failed, nil); code != 200 {
		t.Fatalf("result: %d", code)
	}
	halted := func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" && len(c.Halted) == 1 {
				return true
			}
		}
		return false
	}
	h.waitFor("the halt", halted)
	count := func() map[string]int {
		var page protocol.AuditPage
		if code := h.do("GET", "/v1/audit?limit=1000", admin(), nil, &page); code != 200 {
			t.Fatalf("audit: %d", code)
		}
		kinds := map[string]int{}
		for _, e := range page.Entries {
			kinds[string(e.Kind)]++
		}
		return kinds
	}
	for restart := range 3 {
		h.stop()
		h.start()
		// A re-plan after the restart, which finds the halt again.
		h.waitFor(fmt.Sprintf("the halt after restart %d", restart+1), halted)
		h.report(a, false)
		before := time.Now()
		h.waitFor("a re-plan after the report", func(st protocol.Status) bool {
			for _, c := range st.Clients {
				if c.Client == "acme" && c.PlannedAt.After(before) {
					return len(c.Halted) == 1
				}
			}
			return false
		})
		if k := count(); k["halt"] != 1 || k["resume"] != 0 {
			t.Errorf("after restart %d the audit log has %d halt and %d resume entries, want 1 and 0", restart+1, k["halt"], k["resume"])
		}
	}
	// The resume lands while the controller is down: the first plan after
	// the start has no halt, which is a resume of the halt stored.
	h.stop()
	after := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	h.up.Write(map[string]string{"clients/acme/policy.cue": approveCritical + "\nresume: [{update: \"KB5034441\", after: \"" + after + "\"}]\n"})
	resumed := h.up.Commit("Resume KB5034441 (PSA-77)").String()
	h.start()
	h.waitFor("the halt lifted", func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" && c.Revision == resumed {
				return len(c.Halted) == 0
			}
		}
		return false
	})
	if k := count(); k["halt"] != 1 || k["resume"] != 1 {
		t.Errorf("after a resume that landed while patchd was down the audit log has %d halt and %d resume entries, want 1 and 1", k["halt"], k["resume"])
	}
	h.stop()
	h.start()
	h.waitFor("a plan after the last restart", func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" {
				return len(c.Halted) == 0
			}
		}
		return false
	})
	if k := count(); k["halt"] != 1 || k["resume"] != 1 {
		t.Errorf("after the resume and a restart the audit log has %d halt and %d resume entries, want 1 and 1", k["halt"], k["resume"])
	}
}
