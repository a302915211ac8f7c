package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

// newAgent is a real agent of client with a simulated Linux machine,
// enrolling with the token in tokenFile against url; its state is new.
func newAgent(t *testing.T, url, client, tokenFile, hostname string) *agent.Agent {
	t.Helper()
	secret, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	be, err := sim.New(sim.Options{Seed: 7, Family: "linux", StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Controller: url, Client: client, EnrollSecret: strings.TrimSpace(string(secret)), StateDir: filepath.Join(dir, "agent"),
		Hostname: hostname, OS: protocol.OS{Family: "linux", Version: "12"}, Labels: map[string]string{"ring": "canary"},
		Backend: be, RetryMax: 2, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEnrollTokenWithoutRestart: a token made with patchctl enroll create
// enrolls a real agent of a client the secrets file does not know, into
// a running patchd, and the endpoint reports with the token's labels over
// its agent's; once patchctl enroll revoke has run, another agent
// presenting the token is refused, and says what to do.
func TestEnrollTokenWithoutRestart(t *testing.T) {
	url, admin := startController(t) // no client has an enrollment secret
	t.Setenv("PATCHLINE_TOKEN", "")
	tokenFile := filepath.Join(t.TempDir(), "acme.token")
	code, out, errOut := run(t, "enroll", "create", "--client", "acme", "--name", "acme-pilot", "--expires", "7d", "--uses", "10",
		"--labels", "ring=pilot,site=hq", "--out", tokenFile, "--controller", url, "--token-file", admin)
	if code != 0 {
		t.Fatalf("enroll create: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "patch-agent run --client acme --enroll-token-file "+tokenFile) {
		t.Errorf("enroll create does not say how an agent uses the token:\n%s", out)
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v; want mode 0600", fi, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	first := newAgent(t, url, "acme", tokenFile, "ACME-WS-001")
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	// The agent enrolls and reports: its endpoint is in the state with
	// the token's labels, which win over the ring it reports.
	var ep *protocol.Endpoint
	deadline := time.Now().Add(30 * time.Second)
	for ep == nil && time.Now().Before(deadline) {
		var snap protocol.Snapshot
		if code, body := apitest.Do(t, url, "GET", "/v1/state", map[string]string{"Authorization": "Bearer " + patchdtest.AdminToken}, nil, &snap); code != 200 {
			t.Fatalf("state: %d %s", code, body)
		}
		for _, e := range snap.Endpoints {
			if e.ID == "acme-ws-001" && !e.LastSeen.IsZero() {
				ep = e
			}
		}
		if ep == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
	if ep == nil {
		t.Fatal("the agent enrolled with the token never reported")
	}
	if ep.Labels["ring"] != "pilot" || ep.Labels["site"] != "hq" {
		t.Errorf("endpoint labels %v, want the token's ring=pilot and site=hq", ep.Labels)
	}

	code, out, errOut = run(t, "enroll", "list", "--client", "acme", "-o", "json", "--controller", url, "--token-file", admin)
	var list protocol.EnrollTokenList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Tokens) != 1 || list.Tokens[0].Uses != 1 ||
		list.Tokens[0].State != protocol.EnrollTokenActive || strings.Contains(out, "ple_") {
		t.Fatalf("enroll list -o json: exit %d: %s%s", code, out, errOut)
	}
	code, out, _ = run(t, "enroll", "list", "--controller", url, "--token-file", admin)
	if code != 0 || !strings.Contains(out, "acme-pilot") || !strings.Contains(out, "1/10") || !strings.Contains(out, "ring=pilot,site=hq") {
		t.Errorf("enroll list:\n%s", out)
	}

	if code, out, errOut := run(t, "enroll", "revoke", "acme-pilot", "--controller", url, "--token-file", admin); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("enroll revoke: exit %d: %s%s", code, out, errOut)
	}
	second := newAgent(t, url, "acme", tokenFile, "ACME-WS-002")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	err := second.Run(ctx2)
	if err == nil || ctx2.Err() != nil || !strings.Contains(err.Error(), `enrollment token "acme-pilot" is revoked`) ||
		!strings.Contains(err.Error(), "patchctl enroll create --client acme") {
		t.Fatalf("agent with a revoked token: %v; want a refusal that says to ask for a new token", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enroll", "create"}, "--client is required"},
		{[]string{"enroll", "create", "--client", "acme", "--expires", "soon"}, "--expires"},
		{[]string{"enroll", "create", "--client", "acme", "--labels", "ring"}, "--labels"},
		{[]string{"enroll", "revoke", "acme-pilot"}, "already revoked"},
		{[]string{"enroll", "revoke", "nobody"}, "no enrollment token"},
		{[]string{"enroll", "list", "-o", "yaml"}, "want text or json"},
	} {
		args := append(tc.args, "--controller", url, "--token-file", admin)
		if code, _, errOut := run(t, args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("patchctl %s: exit %d, %q; want an error saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// startWithoutSecrets runs a patchd without a secrets file on dataDir
// until the returned stop is called or the test ends; notice takes what
// it prints for its operator.
func startWithoutSecrets(t *testing.T, repo, dataDir string, notice *bytes.Buffer) (url string, stop func()) {
	t.Helper()
	cfg := patchdtest.Config(t, repo, nil)
	cfg.SecretsFile, cfg.DataDir, cfg.Notice = "", dataDir, notice
	ctx, cancel := context.WithCancel(context.Background())
	c, err := reconciler.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start patchd: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("patchd: %v", err)
		}
	}
	t.Cleanup(stop)
	return "http://" + c.Addr(), stop
}

// TestBootstrapAdminToken: patchd started without a secrets file makes an
// admin token, in a file of its data directory only its owner reads, says
// how to use it, and patchctl manages tokens with it; a restart makes no
// other and leaves the file as it was.
func TestBootstrapAdminToken(t *testing.T) {
	repo := t.TempDir()
	if _, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/demo/fleet", repo)
	commitAll(t, repo, "Demo fleet", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	dataDir := t.TempDir()
	var notice bytes.Buffer
	url, stop := startWithoutSecrets(t, repo, dataDir, &notice)

	file := filepath.Join(dataDir, reconciler.AdminTokenFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", file, fi.Mode().Perm())
	}
	first, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(first), protocol.TokenPrefix) {
		t.Errorf("admin token file holds %q, want a token", first)
	}
	if !strings.Contains(notice.String(), file) || !strings.Contains(notice.String(), "--token-file "+file) {
		t.Errorf("patchd's notice does not say where the token is and how to use it:\n%s", notice.String())
	}

	t.Setenv("PATCHLINE_TOKEN", "")
	if code, _, errOut := run(t, "status", "--controller", url, "--token-file", file); code != 0 {
		t.Errorf("status with the admin token file: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "enroll", "create", "--client", "acme", "--controller", url, "--token-file", file); code != 0 {
		t.Errorf("enroll create with the admin token file: exit %d: %s", code, errOut)
	}

	stop()
	notice.Reset()
	url, _ = startWithoutSecrets(t, repo, dataDir, &notice)
	again, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) || notice.Len() != 0 {
		t.Errorf("a restart made another admin token: file %q then %q, notice %q", first, again, notice.String())
	}
	code, out, errOut := run(t, "tokens", "list", "--format", "json", "--controller", url, "--token-file", file)
	var tl protocol.TokenList
	if code != 0 || json.Unmarshal([]byte(out), &tl) != nil || len(tl.Tokens) != 1 || tl.Tokens[0].Name != reconciler.BootstrapAdminToken {
		t.Errorf("tokens after a restart: exit %d: %s%s; want bootstrap-admin alone", code, out, errOut)
	}
	if code, out, errOut := run(t, "enroll", "list", "--controller", url, "--token-file", file); code != 0 || !strings.Contains(out, "acme-") {
		t.Errorf("enroll list after a restart: exit %d: %s%s", code, out, errOut)
	}
}
