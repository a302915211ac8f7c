package reconciler_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/commitstatus"
)

// forgeToken is the token the test forge expects.
const forgeToken = "ghp_patchd-test-status-token"

// forgeStatus is a commit status the test forge took.
type forgeStatus struct {
	revision, context, state, description string
}

// statusForge is GitHub's commit status API on loopback, for the fleet
// repo msp/fleet: it keeps each status posted. The request shapes of
// every provider are checked in package commitstatus; this one checks
// that the controller posts at the right moments.
type statusForge struct {
	t   *testing.T
	srv *httptest.Server

	mu  sync.Mutex // guards got
	got []forgeStatus
}

func newStatusForge(t *testing.T) *statusForge {
	f := &statusForge{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rev, ok := strings.CutPrefix(r.URL.Path, "/repos/msp/fleet/statuses/")
		if r.Method != http.MethodPost || !ok || r.Header.Get("Authorization") != "Bearer "+forgeToken {
			t.Errorf("forge: unexpected %s %s", r.Method, r.URL)
			http.Error(w, `{"message": "Not Found"}`, http.StatusNotFound)
			return
		}
		var body struct{ State, Context, Description string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("forge: %v", err)
		}
		f.mu.Lock()
		f.got = append(f.got, forgeStatus{rev, body.Context, body.State, body.Description})
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// config posts commit statuses to f.
func (f *statusForge) config() commitstatus.Config {
	return commitstatus.Config{Provider: commitstatus.GitHub, API: f.srv.URL, Repo: "msp/fleet", Token: forgeToken}
}

// wait returns the status of context on revision once it arrives; a hang,
// not a timing assertion.
func (f *statusForge) wait(revision, context string) forgeStatus {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		for _, s := range f.got {
			if s.revision == revision && s.context == context {
				f.mu.Unlock()
				return s
			}
		}
		f.mu.Unlock()
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s status on %s; the forge has %+v", context, revision, f.got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestControllerPostsCommitStatuses: patchd tells the forge what became
// of each commit (applied, refused for a client, refused whole) and, on
// the revision a client runs, that its rollout halted.
func TestControllerPostsCommitStatuses(t *testing.T) {
	forge := newStatusForge(t)
	h := newHarness(t, func(h *harness) { h.cfg.Status = forge.config() })
	want := func(got forgeStatus, state, prefix string) {
		t.Helper()
		if got.state != state || !strings.HasPrefix(got.description, prefix) {
			t.Errorf("%s on %s: %s %q, want %s starting %q", got.context, got.revision[:12], got.state, got.description, state, prefix)
		}
	}
	want(forge.wait(h.first, "patchline/apply"), "success", "applied to 2 clients")

	typo := strings.Replace(approveCritical, `minSeverity: "critical"`, `minSeverity: "critical", reasn: "PSA-12"`, 1)
	badClient := h.push(map[string]string{"clients/acme/policy.cue": typo}, "Approve critical updates, with a typo")
	want(forge.wait(badClient, "patchline/apply"), "failure", "1 of 2 clients refused: clients/acme/policy.cue:")
	want(forge.wait(badClient, "patchline/apply/acme"), "failure", "refused")

	root, err := os.ReadFile("testdata/fleet/fleet.cue")
	if err != nil {
		t.Fatal(err)
	}
	badRoot := h.push(map[string]string{"fleet.cue": string(root) + "\nwindows: always: start: 25\n"}, "Break the root")
	refused := forge.wait(badRoot, "patchline/apply")
	want(refused, "failure", "refused")
	if !strings.Contains(refused.description, "fleet.cue:") {
		t.Errorf("refusal %q does not name the problem's file", refused.description)
	}

	good := h.push(map[string]string{"fleet.cue": string(root), "clients/acme/policy.cue": approveCritical}, "Approve critical security updates")
	want(forge.wait(good, "patchline/apply"), "success", "applied to 2 clients")

	// The canary fails the update: the rollout halts.
	h.waitFor("the revision", func(st protocol.Status) bool { return appliedFor(st, "acme") == good })
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
	want(forge.wait(good, "patchline/rollout/acme"), "failure", "KB5034441 halted in ring canary")
}
