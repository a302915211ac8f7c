package reconciler_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/source"
)

const (
	adminToken    = patchdtest.AdminToken
	webhookSecret = patchdtest.WebhookSecret
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
	// first is the fleet repo's first commit.
	first string
	base  string
	cfg   reconciler.Config
	pd    *patchdtest.Patchd
}

// newHarness starts a controller on a new fleet repo of one commit; mutate,
// when not nil, may change h.cfg and the repo before it starts.
func newHarness(t *testing.T, mutate func(h *harness)) *harness {
	t.Helper()
	repos := t.TempDir()
	up := gittest.NewUpstream(t, repos, "fleet")
	up.CopyDir("testdata/fleet")
	first := up.Commit("Start the fleet")
	url := gittest.StartDaemon(t, repos) + "fleet.git"

	h := &harness{t: t, up: up, repoURL: url, first: first.String()}
	// patchdtest's configuration polls hourly: in these tests a push
	// reaches the controller through the webhook, as in production.
	h.cfg = patchdtest.Config(t, url, map[string]string{"acme": acmeSecret, "globex": globexSecret})
	h.cfg.LongPollMax = 20 * time.Second
	if mutate != nil {
		mutate(h)
	}
	h.start()
	return h
}

// start runs the controller until stop or the end of the test.
func (h *harness) start() {
	h.t.Helper()
	h.pd = patchdtest.Start(h.t, h.cfg)
	h.base = h.pd.URL
}

// stop drains the controller and waits for it.
func (h *harness) stop() { h.pd.Stop() }

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

// waitLongPolls waits until n long-polls are parked in the controller
// (the patchline_longpolls_waiting gauge on its metrics listener); a hang,
// not a timing assertion.
func (h *harness) waitLongPolls(n int) {
	h.t.Helper()
	want := fmt.Sprintf("patchline_longpolls_waiting %d\n", n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(h.pd.MetricsURL)
		if err != nil {
			h.t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			h.t.Fatal(err)
		}
		if strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %d parked long-polls", n)
		}
		time.Sleep(5 * time.Millisecond)
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
	req, err := http.NewRequest("POST", h.base+"/v1/hooks/git", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", source.GitHubSignature([]byte(secret), body))
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
