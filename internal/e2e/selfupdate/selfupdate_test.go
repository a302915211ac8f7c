package selfupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/releasekey"
	"github.com/patchline/patchline/protocol"
)

const (
	client = "acme"
	secret = "selfupdate-acme-enrollment"
	// within bounds every wait: a hang detector, not a timing assertion.
	within = 90 * time.Second
	// confirm is the agents' --update-confirm-timeout: short, so the
	// rollback comes soon.
	confirm = 5 * time.Second
)

// neverChecksIn is the version whose reports the proxy swallows.
const neverChecksIn = "1.2.0"

const fleetCUE = `package fleet

defaults: {
	rings: [
		{name: "canary", select: labels: ring: "canary", window: "always", soak: "0m", minSuccess: 1.0, maxFailures: 0.0%s},
		{name: "broad", select: {}, window: "always", soak: "0m"},
	]
	baseline: approve: []
}

windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
`

// canaryAgent is the policy moving the canary ring to version.
func canaryAgent(version string) string {
	return fmt.Sprintf(fleetCUE, fmt.Sprintf(", agent: version: %q", version))
}

// TestSelfUpdate is issue 18's acceptance of the signed self-update, on
// loopback: two builds of the agent (and a third that never checks in);
// policy moves the canary ring to the new one; the agent verifies it,
// swaps its binary, exits 3, the supervisor (standing in for systemd)
// starts it again, and it reports the new version. A release signed by
// another key, a corrupted download and a version below the running one
// are refused while the agent keeps running; a new binary that never
// checks in is rolled back.
func TestSelfUpdate(t *testing.T) {
	gittest.RequireGit(t)
	bin := t.TempDir()
	builds := map[string]string{}
	for _, v := range []string{"1.0.0", "1.1.0", neverChecksIn} {
		builds[v] = build(t, bin, v)
	}

	// The release key, and another one nobody pinned.
	keys := t.TempDir()
	keyFile, otherKey := filepath.Join(keys, "release.key"), filepath.Join(keys, "other.key")
	for _, k := range []string{keyFile, otherKey} {
		if _, err := releasekey.Generate(k); err != nil {
			t.Fatal(err)
		}
	}
	releases := t.TempDir()
	publish(t, releases, "1.1.0", builds["1.1.0"], keyFile)
	publish(t, releases, neverChecksIn, builds[neverChecksIn], keyFile)
	publish(t, releases, "1.3.0", builds["1.1.0"], otherKey)
	publish(t, releases, "1.4.0", builds["1.1.0"], keyFile)
	// The corrupted download: a byte changed after signing, the size kept.
	corrupt(t, filepath.Join(releases, "1.4.0", protocol.ReleaseBinary(runtime.GOOS, runtime.GOARCH)))

	repo := newRepo(t)
	cfg := patchdtest.Config(t, repo.dir, map[string]string{client: secret})
	cfg.AgentReleases = releases
	patchd := patchdtest.Start(t, cfg)
	proxy := startProxy(t, patchd.URL)

	// The agent is installed as a copy of the 1.0.0 build, as a package
	// installs it, and runs under a supervisor that restarts it on exit 3.
	installed := filepath.Join(t.TempDir(), "patch-agent")
	copyFile(t, builds["1.0.0"], installed, 0o755)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	sup := supervise(t, installed, "--controller", proxy, "--state-dir", t.TempDir(), "--client", client,
		"--enroll-secret-file", secretFile, "--backend", "sim", "--sim-os", "linux", "--hostname", "ws-canary",
		"--labels", "ring=canary", "--release-key", keyFile+releasekey.PublicSuffix,
		"--update-confirm-timeout", confirm.String(), "--report-interval", "2s")

	waitFor(t, "the agent reports 1.0.0", func() (bool, string) {
		ep := endpoint(t, patchd.URL)
		return ep != nil && ep.AgentVersion == "1.0.0", fmt.Sprintf("%+v", ep)
	})
	waitMetric(t, patchd.MetricsURL, `patchline_agents{client="acme",version="1.0.0"} 1`)

	t.Log("policy moves the canary ring to 1.1.0")
	applyPolicy(t, patchd, repo, canaryAgent("1.1.0"))
	waitFor(t, "the agent runs and reports 1.1.0, its update succeeded", func() (bool, string) {
		ep := endpoint(t, patchd.URL)
		u := agentUpdate(ep, "1.1.0")
		return ep.AgentVersion == "1.1.0" && u != nil && u.Installed && lastResult(u) == protocol.ResultSucceeded, describe(ep)
	})
	if got := sup.exits(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("exit statuses of the agent so far: %v, want one 3 (restart me)", got)
	}
	if !sameFile(t, installed, builds["1.1.0"]) {
		t.Fatal("the installed binary is not the 1.1.0 build")
	}
	if _, err := os.Stat(installed + ".previous"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous binary is still there after the update was confirmed: %v", err)
	}
	waitMetric(t, patchd.MetricsURL, `patchline_agents{client="acme",version="1.1.0"} 1`)

	for _, tc := range []struct{ version, want string }{
		{"1.3.0", "does not verify with the release key"},
		{"1.4.0", "SHA-256"},
	} {
		t.Logf("policy asks for %s, which the agent must refuse", tc.version)
		applyPolicy(t, patchd, repo, canaryAgent(tc.version))
		waitFor(t, "the agent refuses "+tc.version, func() (bool, string) {
			ep := endpoint(t, patchd.URL)
			u := agentUpdate(ep, tc.version)
			return u != nil && lastResult(u) == protocol.ResultFailed && strings.Contains(u.Attempts[len(u.Attempts)-1].Error, tc.want), describe(ep)
		})
		if ep := endpoint(t, patchd.URL); ep.AgentVersion != "1.1.0" || len(sup.exits()) != 1 {
			t.Fatalf("after refusing %s: the agent reports %q and exited %v; want 1.1.0 still running", tc.version, ep.AgentVersion, sup.exits())
		}
	}

	t.Log("policy asks for 1.5.0, which patchd has no release of: unavailable, no job")
	rev := applyPolicy(t, patchd, repo, canaryAgent("1.5.0"))
	waitFor(t, "a re-plan with 1.5.0 unavailable", func() (bool, string) {
		cs := clientOf(patchd.Status())
		return cs.Revision == rev && cs.Unavailable == 1, fmt.Sprintf("%+v", cs)
	})
	if ep := endpoint(t, patchd.URL); agentUpdate(ep, "1.5.0") != nil {
		t.Fatalf("a job for a version patchd cannot offer: %s", describe(ep))
	}

	t.Log("policy asks for 1.0.0, below the running agent: nothing is planned")
	rev = applyPolicy(t, patchd, repo, canaryAgent("1.0.0"))
	waitFor(t, "a re-plan with 1.0.0", func() (bool, string) {
		cs := clientOf(patchd.Status())
		return cs.Revision == rev, fmt.Sprintf("%+v", cs)
	})
	if ep := endpoint(t, patchd.URL); agentUpdate(ep, "1.0.0") != nil || ep.AgentVersion != "1.1.0" {
		t.Fatalf("policy below the running version: %s; want no job and 1.1.0 running", describe(ep))
	}

	t.Logf("policy moves the canary ring to %s, which never checks in", neverChecksIn)
	applyPolicy(t, patchd, repo, canaryAgent(neverChecksIn))
	waitFor(t, "the update to "+neverChecksIn+" is rolled back and reported failed", func() (bool, string) {
		ep := endpoint(t, patchd.URL)
		u := agentUpdate(ep, neverChecksIn)
		return u != nil && lastResult(u) == protocol.ResultFailed && ep.AgentVersion == "1.1.0", describe(ep)
	})
	u := agentUpdate(endpoint(t, patchd.URL), neverChecksIn)
	if want := "update to " + neverChecksIn + " rolled back: no check-in within 5s"; u.Attempts[len(u.Attempts)-1].Error != want {
		t.Errorf("the rolled-back update's error: %q, want %q", u.Attempts[len(u.Attempts)-1].Error, want)
	}
	if got := sup.exits(); len(got) != 3 || got[1] != 3 || got[2] != 3 {
		t.Errorf("exit statuses: %v, want three 3s (update, swap, rollback)", got)
	}
	if !sameFile(t, installed, builds["1.1.0"]) {
		t.Error("the installed binary is not the 1.1.0 build after the rollback")
	}
	if proxy := proxyStats.swallowed.Load(); proxy == 0 {
		t.Error("the proxy swallowed no report of the new binary: the rollback test tested nothing")
	}
	if ep := endpoint(t, patchd.URL); ep.AgentVersion != "1.1.0" {
		t.Errorf("in the end the agent reports %q, want 1.1.0", ep.AgentVersion)
	}
}

// build builds patch-agent with version into dir.
func build(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "patch-agent-"+version)
	cmd := exec.Command("go", "build", "-o", out,
		"-ldflags", "-X github.com/patchline/patchline/internal/buildinfo.version="+version, "../../../cmd/patch-agent")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build patch-agent %s: %v\n%s", version, err, msg)
	}
	return out
}

// publish puts binary as release version in releases and signs it with
// the key in keyFile, as `patchctl release sign` does.
func publish(t *testing.T, releases, version, binary, keyFile string) {
	t.Helper()
	dir := filepath.Join(releases, version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, binary, filepath.Join(dir, protocol.ReleaseBinary(runtime.GOOS, runtime.GOARCH)), 0o644)
	key, err := releasekey.LoadPrivate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := releasekey.Sign(key, dir); err != nil {
		t.Fatal(err)
	}
}

func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, perm); err != nil {
		t.Fatal(err)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	sum := func(p string) [32]byte {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(data)
	}
	return sum(a) == sum(b)
}

// repo is the fleet repository patchd follows.
type repo struct {
	dir string
	env []string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{dir: t.TempDir(), env: gittest.Env(t)}
	gittest.Run(t, r.env, r.dir, "init", "--quiet", "--initial-branch=main")
	r.commit(t, map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               fmt.Sprintf(fleetCUE, ""),
		"clients/acme/policy.cue": "package fleet\n\nclient: {id: \"acme\", name: \"Acme Dental\", timezone: \"UTC\"}\n",
	})
	return r
}

func (r *repo) commit(t *testing.T, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gittest.Run(t, r.env, r.dir, "add", "--all")
	gittest.Run(t, r.env, r.dir, "commit", "--quiet", "--allow-empty", "-m", "policy")
	return strings.TrimSpace(gittest.Run(t, r.env, r.dir, "rev-parse", "HEAD"))
}

// applyPolicy commits fleet.cue and waits until patchd applied it to acme.
func applyPolicy(t *testing.T, p *patchdtest.Patchd, r *repo, fleet string) string {
	t.Helper()
	rev := r.commit(t, map[string]string{"fleet.cue": fleet})
	p.WaitStatus("revision "+rev+" applied", func(st protocol.Status) bool {
		for _, rs := range st.Revisions {
			if rs.Client == client && rs.Applied == rev {
				return true
			}
		}
		return false
	})
	return rev
}

func clientOf(st protocol.Status) protocol.ClientStatus {
	for _, cs := range st.Clients {
		if cs.Client == client {
			return cs
		}
	}
	return protocol.ClientStatus{}
}

// endpoint is the one endpoint of the snapshot, or nil before it enrolled.
func endpoint(t *testing.T, base string) *protocol.Endpoint {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/v1/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+patchdtest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	snap, err := protocol.DecodeSnapshot(resp.Body)
	if err != nil {
		t.Fatalf("GET /v1/state: %v", err)
	}
	if len(snap.Endpoints) == 0 {
		return nil
	}
	return snap.Endpoints[0]
}

func agentUpdate(ep *protocol.Endpoint, version string) *protocol.Update {
	if ep == nil {
		return nil
	}
	for _, u := range ep.Updates {
		if u.ID == protocol.AgentUpdateID(version) {
			return u
		}
	}
	return nil
}

func lastResult(u *protocol.Update) protocol.Result {
	if len(u.Attempts) == 0 {
		return ""
	}
	return u.Attempts[len(u.Attempts)-1].Result
}

func describe(ep *protocol.Endpoint) string {
	if ep == nil {
		return "no endpoint"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "agent %s;", ep.AgentVersion)
	for _, u := range ep.Updates {
		if u.Source == protocol.SourcePatchline {
			fmt.Fprintf(&b, " %s installed=%v attempts=%+v;", u.ID, u.Installed, u.Attempts)
		}
	}
	return b.String()
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", within, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitMetric(t *testing.T, url, line string) {
	t.Helper()
	waitFor(t, "metric "+line, func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if l == line {
				return true, ""
			}
		}
		return false, "not in /metrics"
	})
}

// proxyStats counts the reports the proxy swallowed.
var proxyStats struct{ swallowed atomic.Int64 }

// startProxy serves a reverse proxy to patchd on loopback that swallows
// (holds until the agent gives up) every report of an agent saying it
// runs neverChecksIn: that binary never checks in.
func startProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// A long-poll cut by the agent's restart is no error of the test.
	rp.ErrorLog = log.New(io.Discard, "", 0)
	stop := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == protocol.PathReport {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			var rep protocol.Report
			if json.Unmarshal(body, &rep) == nil && rep.AgentVersion == neverChecksIn {
				proxyStats.swallowed.Add(1)
				select {
				case <-r.Context().Done():
				case <-stop:
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// supervisor runs a binary as systemd runs patch-agent.service with
// Restart=on-failure: again after every exit with status 3, not after
// any other end.
type supervisor struct {
	mu       sync.Mutex
	statuses []int
	cmd      *exec.Cmd
	stopped  bool
	done     chan struct{}
	log      string
}

func supervise(t *testing.T, bin string, args ...string) *supervisor {
	t.Helper()
	s := &supervisor{done: make(chan struct{}), log: filepath.Join(t.TempDir(), "agent.log")}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, error) {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		return cmd, cmd.Start()
	}
	go func() {
		defer close(s.done)
		defer logf.Close()
		for {
			s.mu.Lock()
			if s.stopped {
				s.mu.Unlock()
				return
			}
			cmd, err := start()
			if err != nil {
				s.mu.Unlock()
				fmt.Fprintf(logf, "supervisor: start: %v\n", err)
				return
			}
			s.cmd = cmd
			s.mu.Unlock()
			err = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			s.mu.Lock()
			stopped := s.stopped
			if !stopped {
				s.statuses = append(s.statuses, code)
			}
			s.mu.Unlock()
			fmt.Fprintf(logf, "supervisor: agent exited: %v (status %d)\n", err, code)
			if stopped || code != 3 {
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.mu.Lock()
		s.stopped = true
		if s.cmd != nil && s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
		}
		s.mu.Unlock()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.mu.Lock()
			_ = s.cmd.Process.Kill()
			s.mu.Unlock()
			<-s.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("agent log (tail):\n%s", b)
		}
	})
	return s
}

// exits are the exit statuses of the agent's runs so far.
func (s *supervisor) exits() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.statuses...)
}
