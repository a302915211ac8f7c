package reconciler_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

const (
	adminToken    = "admin-token-for-tests"
	webhookSecret = "webhook-secret-for-tests"
	acmeSecret    = "acme-enrollment-secret"
	globexSecret  = "globex-enrollment-secret"
)

// approveCritical is a policy change that makes critical security updates
// desired at once.
const approveCritical = `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "America/Chicago"}
baseline: approve: [{name: "critical", category: ["security"], minSeverity: "critical"}]
`

// harness is a real patchd on loopback following a real bare repository
// served by git daemon, with a real SQLite store in a temp dir.
type harness struct {
	t       *testing.T
	up      *gittest.Upstream
	repoURL string
	dataDir string
	secrets string
	base    string
	cancel  context.CancelFunc
	done    chan error
	cfg     reconciler.Config
}

func newHarness(t *testing.T, mutate func(*reconciler.Config)) *harness {
	t.Helper()
	repos := t.TempDir()
	up := gittest.NewUpstream(t, repos, "fleet")
	up.CopyDir("testdata/fleet")
	up.Commit("Start the fleet")
	url := gittest.StartDaemon(t, repos) + "fleet.git"

	h := &harness{t: t, up: up, repoURL: url, dataDir: t.TempDir()}
	h.secrets = filepath.Join(t.TempDir(), "secrets.json")
	sec := fmt.Sprintf(`{"adminToken": %q, "webhookSecret": %q, "enrollment": {"acme": %q, "globex": %q}}`, adminToken, webhookSecret, acmeSecret, globexSecret)
	if err := os.WriteFile(h.secrets, []byte(sec), 0o600); err != nil {
		t.Fatal(err)
	}
	h.cfg = reconciler.Config{
		DataDir:     h.dataDir,
		SecretsFile: h.secrets,
		Listen:      "127.0.0.1:0",
		// A long poll interval: in these tests a push reaches the
		// controller through the webhook, as in production.
		Poll:        time.Hour,
		LongPollMax: 20 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	h.cfg.Repo.URL = url
	if mutate != nil {
		mutate(&h.cfg)
	}
	h.start()
	return h
}

// start runs the controller until stop or the end of the test.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := reconciler.New(ctx, h.cfg)
	if err != nil {
		cancel()
		h.t.Fatalf("start patchd: %v", err)
	}
	h.base = "http://" + c.Addr()
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- c.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop drains the controller and waits for Run to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("patchd Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("patchd did not stop within 30s of SIGTERM")
	}
}

// do sends a JSON request and decodes a JSON answer into out (when not
// nil); it returns the status code and logs any non-2xx answer.
func (h *harness) do(method, path string, headers map[string]string, body, out any) int {
	h.t.Helper()
	code, data := apitest.Do(h.t, h.base, method, path, headers, body, out)
	if code >= 300 {
		h.t.Logf("%s %s: %d %s", method, path, code, data)
	}
	return code
}

func admin() map[string]string { return map[string]string{"Authorization": "Bearer " + adminToken} }

func (h *harness) status() protocol.Status {
	h.t.Helper()
	var st protocol.Status
	if code := h.do("GET", "/v1/status", admin(), nil, &st); code != 200 {
		h.t.Fatalf("GET /v1/status: %d", code)
	}
	return st
}

// waitFor polls the status until ok holds; a hang, not a timing assertion.
func (h *harness) waitFor(what string, ok func(protocol.Status) bool) protocol.Status {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := h.status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			h.t.Fatalf("waiting for %s; status:\n%s", what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// push commits files upstream and sends the signed GitHub webhook.
func (h *harness) push(files map[string]string, msg string) string {
	h.t.Helper()
	h.up.Write(files)
	rev := h.up.Commit(msg).String()
	if code := h.hook(webhookSecret); code != http.StatusAccepted {
		h.t.Fatalf("webhook: %d", code)
	}
	return rev
}

// hook posts a push webhook signed with secret, as GitHub does.
func (h *harness) hook(secret string) int {
	body := []byte(`{"ref": "refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, err := http.NewRequest("POST", h.base+"/v1/hooks/git", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func appliedFor(st protocol.Status, client string) string {
	for _, r := range st.Revisions {
		if r.Client == client {
			return r.Applied
		}
	}
	return ""
}

// agent is an enrolled endpoint speaking the wire protocol by hand.
type agent struct {
	id, key string
	pub     ed25519.PublicKey
}

func (h *harness) enroll(client, secret, hostname string) (agent, int) {
	h.t.Helper()
	key := "node-key-0123456789abcdef0123456789abcdef-" + hostname
	var resp protocol.EnrollResponse
	code := h.do("POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
		Client: client, Secret: secret, InstanceID: "instance-" + hostname, NodeKey: key,
		Hostname: hostname, OS: protocol.OS{Family: "windows", Version: "10.0.22631"},
		Labels: map[string]string{"ring": "canary"},
	}, &resp)
	return agent{id: resp.Endpoint, key: key, pub: resp.SigningKey}, code
}

func (a agent) headers() map[string]string {
	return map[string]string{"Authorization": "Bearer " + a.key, protocol.HeaderEndpoint: a.id}
}

func critical(installed bool) *protocol.Update {
	return &protocol.Update{
		ID: "KB5034441", Source: "windows-update", Name: "KB5034441", Title: "2026-11 Cumulative Update",
		Category: "security", Severity: "critical", CVSS: 9.8, Released: time.Now().Add(-72 * time.Hour),
		RebootRequired: true, Installed: installed,
	}
}

func (h *harness) report(a agent, installed bool) int {
	h.t.Helper()
	return h.do("POST", protocol.PathReport, a.headers(), protocol.Report{
		Hostname: "ACME-WS-001", OS: protocol.OS{Family: "windows"}, Labels: map[string]string{"ring": "canary"},
		Updates: []*protocol.Update{critical(installed)},
	}, nil)
}

// TestControllerEndToEnd follows one policy change from a push to an
// installed update, through refusals, bad credentials and a restart.
func TestControllerEndToEnd(t *testing.T) {
	h := newHarness(t, nil)
	first := h.up.Commit("no change") // the repo's head as the controller first sees it
	h.hook(webhookSecret)
	h.waitFor("the first revision", func(st protocol.Status) bool { return appliedFor(st, "acme") == first.String() })

	a, code := h.enroll("acme", acmeSecret, "ACME-WS-001")
	if code != 200 || a.id == "" || len(a.pub) != ed25519.PublicKeySize {
		t.Fatalf("enroll: %d %+v", code, a)
	}
	if code := h.report(a, false); code != 200 {
		t.Fatalf("report: %d", code)
	}

	// The agent long-polls before the policy change; the change is pushed
	// to it, not picked up by a later poll.
	type polled struct {
		jobs protocol.JobsResponse
		code int
		at   time.Time
	}
	got := make(chan polled, 1)
	go func() {
		var p polled
		p.code = h.do("GET", protocol.PathJobs+"?wait=20s", a.headers(), nil, &p.jobs)
		p.at = time.Now()
		got <- p
	}()
	time.Sleep(50 * time.Millisecond) // let the long-poll start waiting; it returns at once if a job were already due
	pushed := time.Now()
	rev := h.push(map[string]string{"clients/acme/policy.cue": approveCritical}, "Approve critical security updates (#7)")
	p := <-got
	if p.code != 200 || len(p.jobs.Jobs) != 1 {
		t.Fatalf("long-poll: %d, %d jobs", p.code, len(p.jobs.Jobs))
	}
	t.Logf("commit-to-job latency (webhook, one agent): %v", p.at.Sub(pushed))
	job, err := protocol.OpenJob(a.pub, p.jobs.Jobs[0])
	if err != nil {
		t.Fatalf("job signature: %v", err)
	}
	if job.Endpoint != a.id || job.Revision != rev || len(job.Updates) != 1 || job.Updates[0].ID != "KB5034441" {
		t.Fatalf("job: %+v", job)
	}

	// A job of acme cannot be answered by another endpoint, nor with a
	// wrong key; the real answer is recorded once.
	b, _ := h.enroll("acme", acmeSecret, "ACME-WS-002")
	result := protocol.ResultRequest{Job: job.ID, IdempotencyKey: job.IdempotencyKey, Updates: []protocol.UpdateResult{{Update: "KB5034441", Result: protocol.ResultSucceeded, At: time.Now()}}}
	if code := h.do("POST", protocol.ResultPath(job.ID), b.headers(), result, nil); code != http.StatusNotFound {
		t.Errorf("another endpoint answering the job: %d, want 404", code)
	}
	wrong := a
	wrong.key = "not-the-key"
	if code := h.do("POST", protocol.ResultPath(job.ID), wrong.headers(), result, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong node key: %d, want 401", code)
	}
	var ack protocol.ResultResponse
	if code := h.do("POST", protocol.ResultPath(job.ID), a.headers(), result, &ack); code != 200 || ack.Duplicate {
		t.Fatalf("result: %d %+v", code, ack)
	}
	if code := h.do("POST", protocol.ResultPath(job.ID), a.headers(), result, &ack); code != 200 || !ack.Duplicate {
		t.Fatalf("second copy of the result: %d %+v, want 200 duplicate", code, ack)
	}
	h.report(a, true)
	h.waitFor("acme compliant", func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" && c.Compliant == 1 && c.Drifting == 0 {
				return true
			}
		}
		return false
	})

	// Enrolling into acme with globex's secret fails.
	if _, code := h.enroll("acme", globexSecret, "SNEAKY"); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("cross-client enrollment: %d, want 401 or 403", code)
	}
	// A webhook with a bad signature is rejected.
	if code := h.hook("not-the-secret"); code != http.StatusUnauthorized {
		t.Errorf("webhook with a bad signature: %d, want 401", code)
	}

	// A commit that breaks the root files is refused as a whole: acme keeps
	// running rev.
	bad := h.push(map[string]string{"fleet.cue": "package fleet\n\ndefaults: rings: 42\n"}, "Break the defaults")
	st := h.waitFor("the refusal", func(st protocol.Status) bool { return st.Refused != nil && st.Refused.Revision == bad })
	if appliedFor(st, "acme") != rev {
		t.Errorf("acme runs %s after a refused commit, want %s", appliedFor(st, "acme"), rev)
	}
	if len(st.Refused.Problems) == 0 || !strings.Contains(st.Refused.Problems[0], "fleet.cue") {
		t.Errorf("refusal does not name the file: %+v", st.Refused)
	}

	// A fault in one client's directory keeps that client on its last good
	// revision and moves the others forward.
	h.up.Write(map[string]string{"fleet.cue": mustRead(t, "testdata/fleet/fleet.cue")})
	mixed := h.push(map[string]string{
		"clients/acme/policy.cue":   approveCritical + "\nmode: \"sometimes\"\n",
		"clients/globex/policy.cue": mustRead(t, "testdata/fleet/clients/globex/policy.cue") + "// reviewed\n",
	}, "Fix defaults; acme mode typo")
	st = h.waitFor("globex moves on", func(st protocol.Status) bool { return appliedFor(st, "globex") == mixed })
	if appliedFor(st, "acme") != rev {
		t.Errorf("acme runs %s, want its last good %s", appliedFor(st, "acme"), rev)
	}

	// A restart keeps everything.
	h.stop()
	h.start()
	st = h.status()
	if appliedFor(st, "acme") != rev || appliedFor(st, "globex") != mixed {
		t.Errorf("after restart: %+v", st.Revisions)
	}
	var snap protocol.Snapshot
	if code := h.do("GET", "/v1/state", admin(), nil, &snap); code != 200 {
		t.Fatalf("GET /v1/state: %d", code)
	}
	if len(snap.Endpoints) != 2 || !snapshotHasInstalled(&snap, a.id, "KB5034441") {
		t.Errorf("state after restart does not show the install: %+v", snap.Endpoints)
	}
	if code := h.do("GET", "/v1/state", nil, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("state without the admin token: %d, want 401", code)
	}
}

func snapshotHasInstalled(s *protocol.Snapshot, endpoint, update string) bool {
	for _, ep := range s.Endpoints {
		if ep.ID != endpoint {
			continue
		}
		for _, u := range ep.Updates {
			if u.ID == update && u.Installed {
				return true
			}
		}
	}
	return false
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// commitSigned commits the upstream clone's changes signed with key (go-git
// signs; the git CLI pushes) and returns the commit.
func commitSigned(t *testing.T, up *gittest.Upstream, key *openpgp.Entity, msg string) string {
	t.Helper()
	repo, err := git.PlainOpen(up.Work)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Fleet Lead", Email: "lead@msp.example", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	gittest.Run(t, up.Env, up.Work, "push", "--quiet", "origin", "main")
	return h.String()
}

// TestRequireSigned: under --require-signed, a signed head is applied and
// an unsigned commit on top of it is refused while the signed revision
// keeps running.
func TestRequireSigned(t *testing.T) {
	key, armored := gittest.SigningKey(t, "Fleet Lead")
	var up *gittest.Upstream
	h := newHarness(t, func(cfg *reconciler.Config) {
		cfg.Verify.RequireSigned = true
		cfg.Verify.Keyring = armored
	})
	up = h.up
	// The harness's first commit is unsigned, so it was refused.
	h.waitFor("the unsigned first commit refused", func(st protocol.Status) bool { return st.Refused != nil })

	signed := commitSigned(t, up, key, "Signed policy")
	h.hook(webhookSecret)
	h.waitFor("the signed commit applied", func(st protocol.Status) bool { return appliedFor(st, "acme") == signed })

	unsigned := h.push(map[string]string{"clients/acme/policy.cue": approveCritical}, "Unsigned change")
	st := h.waitFor("the unsigned commit refused", func(st protocol.Status) bool {
		return st.Refused != nil && st.Refused.Revision == unsigned
	})
	if appliedFor(st, "acme") != signed {
		t.Errorf("acme runs %s, want the signed %s", appliedFor(st, "acme"), signed)
	}
	if !strings.Contains(strings.Join(st.Refused.Problems, " "), "sign") {
		t.Errorf("refusal does not say it is about signing: %+v", st.Refused)
	}
}

// TestHaltAndResume: a failed canary install halts the update, the audit
// log says so, and a commit with a resume entry lifts the halt.
func TestHaltAndResume(t *testing.T) {
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
	h.waitFor("the halt", func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" && len(c.Halted) == 1 && c.Halted[0].Ring == "canary" {
				return true
			}
		}
		return false
	})
	after := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	h.push(map[string]string{"clients/acme/policy.cue": approveCritical + "\nresume: [{update: \"KB5034441\", after: \"" + after + "\"}]\n"}, "Resume KB5034441 (PSA-77)")
	h.waitFor("the halt lifted", func(st protocol.Status) bool {
		for _, c := range st.Clients {
			if c.Client == "acme" && len(c.Halted) == 0 && c.Revision != rev {
				return true
			}
		}
		return false
	})
	var audit struct {
		Entries []struct {
			Kind   string `json:"kind"`
			Client string `json:"client"`
		} `json:"entries"`
	}
	if code := h.do("GET", "/v1/audit?limit=1000", admin(), nil, &audit); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	kinds := map[string]int{}
	for _, e := range audit.Entries {
		kinds[e.Kind]++
	}
	for _, k := range []string{"revision-applied", "job-created", "job-result", "halt", "resume"} {
		if kinds[k] == 0 {
			t.Errorf("the audit log has no %s entry: %v", k, kinds)
		}
	}
}
