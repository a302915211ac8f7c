package reconciler_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/source"
)

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
	// The long-poll must be parked before the push, so the job wakes it
	// (it would return at once if a job were already due).
	h.waitLongPolls(1)
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

// TestRequireSigned: under --require-signed, the fleet repo's first
// commit, given as the trust anchor, is applied as it is; a signed head on
// top of it is applied, and an unsigned commit on top of that is refused
// while the signed revision keeps running.
func TestRequireSigned(t *testing.T) {
	key, armored := gittest.SigningKey(t, "Fleet Lead", "lead@msp.example")
	h := newHarness(t, func(h *harness) {
		h.cfg.Verify = source.VerifyPolicy{RequireSigned: true, Keyring: armored, TrustFrom: plumbing.NewHash(h.first)}
	})
	h.waitFor("the trust anchor applied", func(st protocol.Status) bool { return appliedFor(st, "acme") == h.first })

	signed := commitSigned(t, h.up, key, "Signed policy")
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

// TestRequireSignedFirstHead: before any revision is applied, every commit
// between the trust anchor (--trust-from) and the head must be signed, as
// every commit after the applied revision must be later on.
func TestRequireSignedFirstHead(t *testing.T) {
	key, armored := gittest.SigningKey(t, "Fleet Lead", "lead@msp.example")
	tests := []struct {
		name string
		// push commits on top of the trust anchor, the repo's first
		// commit, before patchd starts, and returns the head.
		push func(h *harness) string
		// wantProblem is in the head's refusal; "" when it is applied.
		wantProblem string
	}{
		{"a signed head right after the trust anchor", func(h *harness) string {
			h.up.Write(map[string]string{"clients/acme/policy.cue": approveCritical})
			return commitSigned(t, h.up, key, "Signed policy")
		}, ""},
		{"an unsigned commit under a signed head", func(h *harness) string {
			h.up.Write(map[string]string{"clients/acme/policy.cue": approveCritical})
			h.up.Commit("Unsigned change")
			return commitSigned(t, h.up, key, "Signed change on top")
		}, "(\"Unsigned change\" by "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var head string
			h := newHarness(t, func(h *harness) {
				h.cfg.Verify = source.VerifyPolicy{RequireSigned: true, Keyring: armored, TrustFrom: plumbing.NewHash(h.first)}
				head = tt.push(h)
			})
			st := h.status()
			if st.Head != head {
				t.Fatalf("head %s, want %s", st.Head, head)
			}
			if tt.wantProblem == "" {
				if got := appliedFor(st, "acme"); got != head {
					t.Errorf("acme runs %q, want the head %s; refused: %+v", got, head, st.Refused)
				}
				return
			}
			if got := appliedFor(st, "acme"); got != "" {
				t.Errorf("acme runs %s, want nothing applied", got)
			}
			if st.Refused == nil || st.Refused.Revision != head || !strings.Contains(strings.Join(st.Refused.Problems, " "), tt.wantProblem) {
				t.Errorf("refused %+v, want the head refused with %q", st.Refused, tt.wantProblem)
			}
		})
	}

	t.Run("no trust anchor before any revision is applied", func(t *testing.T) {
		up := gittest.NewUpstream(t, t.TempDir(), "fleet")
		up.CopyDir("testdata/fleet")
		up.Commit("Start the fleet")
		cfg := patchdtest.Config(t, up.Work, nil)
		cfg.Verify = source.VerifyPolicy{RequireSigned: true, Keyring: armored}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, err := reconciler.New(ctx, cfg)
		if err == nil {
			cancel()
			_ = c.Run(ctx)
			t.Fatal("patchd started without a trust anchor and with nothing applied")
		}
		if !strings.Contains(err.Error(), "--require-signed: no fleet revision has been applied yet") || !strings.Contains(err.Error(), "give --trust-from COMMIT") {
			t.Errorf("error %q does not say to give --trust-from", err)
		}
	})

	t.Run("a restart after a revision was applied needs no trust anchor", func(t *testing.T) {
		h := newHarness(t, func(h *harness) {
			h.cfg.Verify = source.VerifyPolicy{RequireSigned: true, Keyring: armored, TrustFrom: plumbing.NewHash(h.first)}
		})
		h.waitFor("the trust anchor applied", func(st protocol.Status) bool { return appliedFor(st, "acme") == h.first })
		h.stop()
		h.cfg.Verify.TrustFrom = plumbing.ZeroHash
		h.start()
		if got := appliedFor(h.status(), "acme"); got != h.first {
			t.Errorf("after the restart acme runs %q, want %s", got, h.first)
		}
	})
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
