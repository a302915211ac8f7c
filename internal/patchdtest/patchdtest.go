// Package patchdtest runs a real controller, what patchd runs, inside a
// test: reconciler.Controller on 127.0.0.1 with free ports (one for the
// API, one for /metrics), a fresh data
// directory (so a real SQLite store), a secrets file it writes, and the
// fleet repository the test gives. The controller stops, and is waited
// for, when the test ends.
//
// Tests that must kill patchd as a process run the binary instead
// (internal/e2e); SecretsFile gives them the same secrets.
package patchdtest

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

const (
	// AdminToken is the admin token of every test controller.
	AdminToken = "patchdtest-admin-token"
	// WebhookSecret signs the push webhooks test controllers accept.
	WebhookSecret = "patchdtest-webhook-secret"
)

// wait bounds every wait of this package: a hang detector, not a timing
// assertion.
const wait = 30 * time.Second

// SecretsFile writes a secrets file, readable only by its owner, with
// AdminToken, WebhookSecret and the enrollment secret of each client
// (client id → secret), and returns its path.
func SecretsFile(t testing.TB, enrollment map[string]string) string {
	t.Helper()
	b, err := json.Marshal(protocol.SecretsFile{AdminToken: AdminToken, WebhookSecret: WebhookSecret, Enrollment: enrollment})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Config is a test controller's configuration. It follows repo, a fleet
// repository given by URL (git://, file://, https://) or as the directory
// of a local repository, whose branch main it follows. Its data directory
// is new; it listens on 127.0.0.1 with a free port, and serves /metrics on
// another; its secrets file is SecretsFile(t, enrollment); it fetches a
// repository by URL once an hour only, so a test that pushes sends the
// webhook, as GitHub would; a long-poll lasts at most 10 s; it logs
// nothing. A test changes what it needs before Start.
func Config(t testing.TB, repo string, enrollment map[string]string) reconciler.Config {
	t.Helper()
	cfg := reconciler.Config{
		DataDir:       t.TempDir(),
		SecretsFile:   SecretsFile(t, enrollment),
		Listen:        "127.0.0.1:0",
		MetricsListen: "127.0.0.1:0",
		Poll:          time.Hour,
		LongPollMax:   10 * time.Second,
		Logger:        slog.New(slog.DiscardHandler),
	}
	if strings.Contains(repo, "://") {
		cfg.Repo.URL = repo
	} else {
		cfg.RepoDir, cfg.RepoBranch = repo, "main"
	}
	return cfg
}

// Patchd is a controller running in the test process.
type Patchd struct {
	// URL is its base URL, http://127.0.0.1:<port>.
	URL string
	// Addr is the address it listens on, 127.0.0.1:<port>.
	Addr string
	// MetricsAddr is the address of its metrics listener,
	// 127.0.0.1:<another port>, and MetricsURL the URL of its metrics,
	// http://<MetricsAddr>/metrics.
	MetricsAddr, MetricsURL string

	t      testing.TB
	cancel context.CancelFunc // nil once stopped
	done   chan error
}

// Start runs a controller with cfg until the test ends, or Stop, and
// returns once the controller has applied or refused the head of its
// fleet repository's branch. cfg's secrets file must hold AdminToken, as
// Config's does.
func Start(t testing.TB, cfg reconciler.Config) *Patchd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := reconciler.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start patchd: %v", err)
	}
	p := &Patchd{
		URL: "http://" + c.Addr(), Addr: c.Addr(),
		MetricsAddr: c.MetricsAddr(), MetricsURL: "http://" + c.MetricsAddr() + "/metrics",
		t: t, cancel: cancel, done: make(chan error, 1),
	}
	go func() { p.done <- c.Run(ctx) }()
	t.Cleanup(p.Stop)
	p.WaitStatus("the fleet repo's head applied or refused", func(st protocol.Status) bool { return st.Head != "" })
	return p
}

// Stop stops the controller as SIGTERM stops patchd (it drains) and waits
// for it. The end of the test stops it too; a second Stop does nothing. A
// Run that fails, or a controller that does not stop within 30 s, fails
// the test.
func (p *Patchd) Stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("patchd Run: %v", err)
		}
	case <-time.After(wait):
		p.t.Errorf("patchd did not stop within %v", wait)
	}
}

// Status is the controller's GET /v1/status; anything but a 200 fails the
// test.
func (p *Patchd) Status() protocol.Status {
	p.t.Helper()
	var st protocol.Status
	if code, body := apitest.Do(p.t, p.URL, "GET", "/v1/status", map[string]string{"Authorization": "Bearer " + AdminToken}, nil, &st); code != 200 {
		p.t.Fatalf("GET /v1/status: %d %s", code, body)
	}
	return st
}

// WaitStatus polls the status until ok holds and returns it. After 30 s
// it fails the test with what it waited for and the last status.
func (p *Patchd) WaitStatus(what string, ok func(protocol.Status) bool) protocol.Status {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st := p.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			p.t.Fatalf("waited %v for %s; status:\n%s", wait, what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
