package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

var (
	long     = flag.Bool("long", false, "run the long variants: 500 agents and 20 kills of patchd, a 30 s controller outage, a bigger chaos run")
	seedFlag = flag.Uint64("seed", 0, "seed of the random fault schedule (0 picks one from the clock; every test logs the seed it used)")
)

// The one client of the test fleet and its enrollment secret; the admin
// token and webhook secret are package patchdtest's.
const (
	acmeSecret = "e2e-acme-enrollment"
	client     = "acme"
)

// bins are the patchd and patch-agent binaries, built once per test run
// by the first test that kills processes.
var bins struct {
	once          sync.Once
	dir           string
	patchd, agent string
	err           error
}

func TestMain(m *testing.M) {
	flag.Parse()
	// pgtest.Main runs the tests and stops the PostgreSQL cluster the
	// replica tests started.
	code := pgtest.Main(m)
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binaries builds cmd/patchd and cmd/patch-agent (once) and returns their
// paths.
func binaries(t *testing.T) (patchd, patchAgent string) {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "patchline-e2e-bin-")
		if bins.err != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{{"patchd", "../../cmd/patchd"}, {"patch-agent", "../../cmd/patch-agent"}} {
			out := filepath.Join(bins.dir, b.out)
			cmd := exec.Command("go", "build", "-o", out, b.pkg)
			if msg, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, msg)
				return
			}
		}
		bins.patchd, bins.agent = filepath.Join(bins.dir, "patchd"), filepath.Join(bins.dir, "patch-agent")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.patchd, bins.agent
}

// seed returns the seed of a test's random choices and logs it.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", s, s)
	return s
}

// fleetCUE is the test fleet: a canary ring that must fully pass, then
// broad; windows always open; no soak; every security update approved.
const fleetCUE = `package fleet

defaults: {
	staleAfter: %q
	// Simulated endpoints each report their own made-up updates, so a
	// canary may have none of a pilot's: minEndpoints 0 lets it pass empty.
	rings: [
		{name: "canary", select: labels: ring: "canary", window: "always", soak: "0m", minSuccess: 1.0, maxFailures: 0.0, minEndpoints: 0},
		{name: "broad", select: {}, window: "always", soak: "0m", minSuccess: 0.5, maxFailures: 0.3},
	]
	baseline: approve: %s
}

windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
`

const acmeCUE = `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "UTC"}
`

// approveSecurity approves every security update; approveNothing holds
// every update back, so agents can enrol before a rollout starts.
const (
	approveSecurity = `[{name: "security", category: ["security"]}]`
	approveNothing  = `[]`
)

// fleetRepo is a local fleet repository that patchd follows with
// --repo-dir.
type fleetRepo struct {
	// base is the URL of the controller following the repo, once started.
	base       string
	t          *testing.T
	dir        string
	env        []string
	staleAfter string
}

// newFleetRepo makes a fleet repo with the test fleet (staleAfter and
// the approve list as given) and commits it.
func newFleetRepo(t *testing.T, staleAfter, approve string) *fleetRepo {
	t.Helper()
	gittest.RequireGit(t)
	r := &fleetRepo{t: t, dir: t.TempDir(), env: gittest.Env(t)}
	gittest.Run(t, r.env, r.dir, "init", "--quiet", "--initial-branch=main")
	r.write(map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               fmt.Sprintf(fleetCUE, staleAfter, approve),
		"clients/acme/policy.cue": acmeCUE,
	})
	r.staleAfter = staleAfter
	r.commit("Start the fleet")
	return r
}

// approve commits a new approve list and returns the commit.
func (r *fleetRepo) approve(approve string) string {
	r.t.Helper()
	r.write(map[string]string{"fleet.cue": fmt.Sprintf(fleetCUE, r.staleAfter, approve)})
	return r.commit("Approve: " + approve)
}

func (r *fleetRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit commits everything (unsigned) and returns the commit hash.
func (r *fleetRepo) commit(msg string) string {
	r.t.Helper()
	gittest.Run(r.t, r.env, r.dir, "add", "--all")
	gittest.Run(r.t, r.env, r.dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	return gittest.Run(r.t, r.env, r.dir, "rev-parse", "HEAD")
}

// freeAddr returns a loopback address with a port free right now, for a
// process that must come back on the same address after a kill.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a process of one of the test binaries, which the test kills
// with SIGKILL and may start again with the same arguments. Its output goes
// to a log file, whose tail a failed test shows.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string
	cmd  *exec.Cmd
	// exited is closed when the current process has been waited for.
	exited chan struct{}
}

// newProc prepares a process of bin named name (for its log). Killing it
// is registered with the test before it ever starts, so a test that fails
// while starting it leaves nothing running.
func newProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: bin, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s log (tail):\n%s", name, tail(string(b), 4000))
		}
	})
	return p
}

// run starts the process; a goroutine waits for it.
func (p *proc) run() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.exited)
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// patchdProc is a patchd process that the test kills with SIGKILL and
// starts again on the same address and data directory.
type patchdProc struct {
	*proc
	addr string
}

// startPatchd runs the patchd binary following repo, with its data in
// dataDir, and waits until it answers.
func startPatchd(t *testing.T, repo *fleetRepo, dataDir string, extra ...string) *patchdProc {
	t.Helper()
	bin, _ := binaries(t)
	addr := freeAddr(t)
	args := append([]string{"serve", "--repo-dir", repo.dir, "--data-dir", dataDir, "--secrets", patchdtest.SecretsFile(t, enrollment),
		"--listen", addr, "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	p := &patchdProc{proc: newProc(t, "patchd", bin, args...), addr: addr}
	p.start()
	return p
}

func (p *patchdProc) base() string { return "http://" + p.addr }

// start starts the process and waits (bounded) until /v1/status answers.
func (p *patchdProc) start() {
	p.t.Helper()
	p.run()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			b, _ := os.ReadFile(p.log)
			p.t.Fatalf("patchd exited while starting:\n%s", tail(string(b), 4000))
		default:
		}
		if code, _ := get(p.base(), "/v1/status", patchdtest.AdminToken, nil); code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatal("patchd did not answer within 30s of starting")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// enrollment is the enrollment secrets of every test controller.
var enrollment = map[string]string{client: acmeSecret}

// controllerConfig is the in-process controller's configuration for repo.
func controllerConfig(t *testing.T, repo *fleetRepo) reconciler.Config {
	return patchdtest.Config(t, repo.dir, enrollment)
}

// startController runs a controller in the test process until the test
// ends, and waits until it has applied the repo's head to acme.
func startController(t *testing.T, cfg reconciler.Config) *patchdtest.Patchd {
	t.Helper()
	c := patchdtest.Start(t, cfg)
	c.WaitStatus("the first policy revision", func(st protocol.Status) bool { return applied(st, client) != "" })
	return c
}

// get sends an admin or anonymous GET and decodes a 200 answer into out.
func get(base, path, token string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: decode: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

func status(t *testing.T, base string) protocol.Status {
	t.Helper()
	var st protocol.Status
	if code, err := get(base, "/v1/status", patchdtest.AdminToken, &st); code != http.StatusOK {
		t.Fatalf("GET /v1/status: %d %v", code, err)
	}
	return st
}

func snapshot(t *testing.T, base string) *protocol.Snapshot {
	t.Helper()
	var snap protocol.Snapshot
	if code, err := get(base, "/v1/state", patchdtest.AdminToken, &snap); code != http.StatusOK {
		t.Fatalf("GET /v1/state: %d %v", code, err)
	}
	return &snap
}

// auditEntry is an entry of GET /v1/audit.
type auditEntry struct {
	ID       int64           `json:"id"`
	At       time.Time       `json:"at"`
	Kind     string          `json:"kind"`
	Endpoint string          `json:"endpoint"`
	Job      string          `json:"job"`
	Detail   json.RawMessage `json:"detail"`
}

// audit reads the whole audit log, page by page.
func audit(t *testing.T, base string) []auditEntry {
	t.Helper()
	var all []auditEntry
	after := int64(0)
	for range 10_000 {
		var page struct {
			Entries []auditEntry `json:"entries"`
			Next    int64        `json:"next"`
		}
		if code, err := get(base, fmt.Sprintf("/v1/audit?after=%d&limit=1000", after), patchdtest.AdminToken, &page); code != http.StatusOK {
			t.Fatalf("GET /v1/audit: %d %v", code, err)
		}
		if len(page.Entries) == 0 {
			return all
		}
		all = append(all, page.Entries...)
		after = page.Next
	}
	t.Fatal("audit log does not end")
	return nil
}

func applied(st protocol.Status, c string) string {
	for _, r := range st.Revisions {
		if r.Client == c {
			return r.Applied
		}
	}
	return ""
}

func clientStatus(st protocol.Status, c string) protocol.ClientStatus {
	for _, cs := range st.Clients {
		if cs.Client == c {
			return cs
		}
	}
	return protocol.ClientStatus{}
}

// waitFor polls cond until it holds or the deadline passes; a deadline is
// a hang detector, not a timing assertion. cond's string describes the
// state for the failure message.
func waitFor(t *testing.T, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last seen: %s", within, what, desc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// simAgent is a patch-agent with the simulated backend running in the test
// process, or the state directory of one run as a process.
type simAgent struct {
	host, ring, dir string
	cancel          context.CancelFunc
	done            chan error
}

// agentOptions tune in-process agents.
type agentOptions struct {
	// clock, when set, replaces the system clock.
	clock agent.Clock
	// reportEvery is the inventory report interval (default 1h).
	reportEvery time.Duration
}

// hostSeed is the sim backend's seed for a host name, as patch-agent
// derives it.
func hostSeed(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64()
}

// startSimAgents starts n in-process agents against controller; the first
// canary of them are in the canary ring.
func startSimAgents(t *testing.T, controller string, n, canary int, opts agentOptions) []*simAgent {
	t.Helper()
	base := t.TempDir()
	agents := make([]*simAgent, n)
	for i := range agents {
		ring := "broad"
		if i < canary {
			ring = "canary"
		}
		a := &simAgent{host: fmt.Sprintf("acme-%s-%04d", ring, i), ring: ring}
		a.dir = filepath.Join(base, a.host)
		a.start(t, controller, opts)
		agents[i] = a
	}
	t.Cleanup(func() {
		for _, a := range agents {
			a.stop(t)
		}
	})
	return agents
}

// startAgent starts one in-process agent named host in ring.
func startAgent(t *testing.T, controller, host, ring string, opts agentOptions) *simAgent {
	t.Helper()
	a := &simAgent{host: host, ring: ring, dir: filepath.Join(t.TempDir(), host)}
	a.start(t, controller, opts)
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *simAgent) start(t *testing.T, controller string, opts agentOptions) {
	t.Helper()
	be, err := sim.New(sim.Options{Seed: hostSeed(a.host), Family: "linux", StateDir: a.dir})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(agent.Config{
		Controller: controller, Client: client, EnrollSecret: acmeSecret, StateDir: a.dir,
		Hostname: a.host, OS: protocol.OS{Family: "linux", Version: "debian 12"}, Labels: map[string]string{"ring": a.ring},
		Backend: be, ReportInterval: opts.reportEvery, Clock: opts.clock,
		RetryWaitMin: 20 * time.Millisecond, RetryWaitMax: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan error, 1)
	go func() { a.done <- ag.Run(ctx) }()
}

// stop cancels the agent and waits for its Run to return.
func (a *simAgent) stop(t *testing.T) {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("agent %s: %v", a.host, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("agent %s did not stop within 30s", a.host)
	}
}

// endpoint is the endpoint id the agent enrolled as ("" before).
func (a *simAgent) endpoint() string {
	var id struct {
		Endpoint string `json:"endpoint"`
	}
	b, err := os.ReadFile(filepath.Join(a.dir, "identity.json"))
	if err != nil || json.Unmarshal(b, &id) != nil {
		return ""
	}
	return id.Endpoint
}

// installs is the sim backend's install attempts per update.
func (a *simAgent) installs(t *testing.T) map[string]int {
	t.Helper()
	var st struct {
		Installs map[string]int `json:"installs"`
	}
	b, err := os.ReadFile(filepath.Join(a.dir, sim.StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v", a.host, err)
	}
	return st.Installs
}

// journalEntry is one file of the agent's journal (its outbox and record
// of finished jobs), read as the agent writes it.
type journalEntry struct {
	Job    string                  `json:"job"`
	Key    string                  `json:"idempotencyKey"`
	Result *protocol.ResultRequest `json:"result"`
	Acked  bool                    `json:"acked"`
}

// journal reads the agent's journal.
func (a *simAgent) journal(t *testing.T) []journalEntry {
	t.Helper()
	dir := filepath.Join(a.dir, "journal")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []journalEntry
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".json") || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // an acknowledged refusal removed meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		var e journalEntry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: journal %s: %v", a.host, de.Name(), err)
		}
		out = append(out, e)
	}
	return out
}

// settled reports whether the agent has no job in its outbox and none half
// done.
func (a *simAgent) settled(t *testing.T) bool {
	for _, e := range a.journal(t) {
		if e.Result == nil || !e.Acked {
			return false
		}
	}
	return true
}

// waitEnrolled waits until the controller knows all agents' endpoints,
// holds an inventory report of each (none is stale: an endpoint enrolled
// but not reported yet has no report time) and has planned with them.
// Enrolled alone is not enough: a backup taken between an agent's
// enrollment and its first report holds the endpoint without inventory,
// and the agent reports again only an hour later.
func waitEnrolled(t *testing.T, base string, agents []*simAgent, within time.Duration) {
	t.Helper()
	waitFor(t, "every agent enrolled and reported", within, func() (bool, string) {
		cs := clientStatus(status(t, base), client)
		return cs.Endpoints == len(agents) && cs.Stale == 0, fmt.Sprintf("%+v", cs)
	})
}

// waitRevision waits until the client runs rev.
func waitRevision(t *testing.T, base, rev string) {
	t.Helper()
	waitFor(t, "revision "+rev, 30*time.Second, func() (bool, string) {
		st := status(t, base)
		return applied(st, client) == rev, fmt.Sprintf("%+v", st.Revisions)
	})
}

// waitConverged waits until the client was planned at revision rev,
// every agent is enrolled, the client is fully compliant with all of them
// and every outbox is empty.
func waitConverged(t *testing.T, base, rev string, agents []*simAgent, within time.Duration) {
	t.Helper()
	waitFor(t, "the fleet to converge", within, func() (bool, string) {
		cs := clientStatus(status(t, base), client)
		desc := fmt.Sprintf("%+v", cs)
		if cs.Revision != rev || cs.Endpoints != len(agents) || cs.Compliant != len(agents) || cs.Missing != 0 {
			return false, desc + "\n" + drift(t, base, agents)
		}
		for _, a := range agents {
			if !a.settled(t) {
				return false, desc + "; outbox of " + a.host + " not empty"
			}
		}
		return true, desc
	})
}

// drift describes the endpoints with security updates not installed, for
// a failure message.
func drift(t *testing.T, base string, agents []*simAgent) string {
	t.Helper()
	hosts := map[string]*simAgent{}
	for _, a := range agents {
		hosts[a.endpoint()] = a
	}
	var b strings.Builder
	for _, ep := range snapshot(t, base).Endpoints {
		for _, u := range ep.Updates {
			if u.Installed || u.Category != "security" {
				continue
			}
			fmt.Fprintf(&b, "%s %s: inFlight=%v attempts=%+v\n", ep.Hostname, u.ID, u.InFlightJob != nil && *u.InFlightJob != "", u.Attempts)
			if a := hosts[ep.ID]; a != nil {
				fmt.Fprintf(&b, "  installs=%v journal=%+v\n", a.installs(t), a.journal(t))
			}
		}
	}
	return b.String()
}

// checkRollout asserts the guarantees of a rollout under faults:
//
//   - every update was installed at most once per endpoint (sim counts), and
//     every update with an install is installed;
//   - every result in an agent's journal is recorded by the controller
//     exactly once, and the controller has no attempt the agents did not
//     send;
//   - no attempt failed or was refused;
//   - no broad-ring job for an update was created before the canary ring
//     passed for it (the last canary install of that update).
func checkRollout(t *testing.T, snap *protocol.Snapshot, log []auditEntry, agents []*simAgent) {
	t.Helper()
	byID := map[string]*protocol.Endpoint{}
	for _, ep := range snap.Endpoints {
		byID[ep.ID] = ep
	}
	type attemptKey struct{ endpoint, update, job string }
	stored := map[attemptKey]int{}
	for _, ep := range snap.Endpoints {
		for _, u := range ep.Updates {
			for _, at := range u.Attempts {
				stored[attemptKey{ep.ID, u.ID, at.Job}]++
				if at.Result != protocol.ResultSucceeded {
					t.Errorf("%s %s: attempt of job %s %s: %s", ep.Hostname, u.ID, at.Job, at.Result, at.Error)
				}
			}
		}
	}
	sent := map[attemptKey]bool{}
	installsTotal := 0
	for _, a := range agents {
		id := a.endpoint()
		ep := byID[id]
		if ep == nil {
			t.Errorf("%s (endpoint %q) is not in the controller's state", a.host, id)
			continue
		}
		journal := a.journal(t)
		for u, n := range a.installs(t) {
			installsTotal += n
			if n != 1 {
				var jobs []string
				for _, e := range journal {
					if e.Result == nil {
						continue
					}
					for _, r := range e.Result.Updates {
						if r.Update == u {
							jobs = append(jobs, fmt.Sprintf("%s (key %.12s, %d updates)", e.Job, e.Key, len(e.Result.Updates)))
						}
					}
				}
				t.Errorf("%s: %s installed %d times, want exactly once; jobs: %s", a.host, u, n, strings.Join(jobs, ", "))
			}
		}
		for _, e := range journal {
			if e.Result == nil || !e.Acked {
				t.Errorf("%s: job %s still in the outbox (result %v, acked %v)", a.host, e.Job, e.Result != nil, e.Acked)
				continue
			}
			for _, r := range e.Result.Updates {
				k := attemptKey{id, r.Update, e.Job}
				sent[k] = true
				if n := stored[k]; n != 1 {
					t.Errorf("%s: result of %s in job %s is stored %d times, want once (lost or doubled)", a.host, r.Update, e.Job, n)
				}
			}
		}
	}
	for k := range stored {
		if !sent[k] {
			t.Errorf("controller has an attempt no agent journal holds: %+v", k)
		}
	}
	if installsTotal == 0 {
		t.Error("nothing was installed: the rollout did not run")
	}
	checkRingOrder(t, snap, log)
}

// checkRingOrder asserts that no broad-ring job for an update was created
// before the canary ring passed for it: with minSuccess 1.0 and no soak,
// that is the last canary endpoint's install of the update.
func checkRingOrder(t *testing.T, snap *protocol.Snapshot, log []auditEntry) {
	t.Helper()
	canaryPass := map[string]time.Time{}
	for _, ep := range snap.Endpoints {
		if ep.Labels["ring"] != "canary" {
			continue
		}
		for _, u := range ep.Updates {
			if len(u.Attempts) == 0 {
				continue // came installed, or never approved: not part of the rollout
			}
			if u.InstalledAt == nil {
				t.Errorf("canary %s: %s attempted but not installed", ep.Hostname, u.ID)
				continue
			}
			if u.InstalledAt.After(canaryPass[u.ID]) {
				canaryPass[u.ID] = *u.InstalledAt
			}
		}
	}
	broadJobs := 0
	for _, e := range log {
		if e.Kind != "job-created" {
			continue
		}
		var d struct {
			Ring    string   `json:"ring"`
			Updates []string `json:"updates"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatalf("audit entry %d: %v", e.ID, err)
		}
		if d.Ring != "broad" {
			continue
		}
		broadJobs++
		for _, u := range d.Updates {
			if pass, ok := canaryPass[u]; ok && e.At.Before(pass) {
				t.Errorf("broad job %s for %s created at %s, before the canary ring passed at %s", e.Job, u, e.At.Format(time.RFC3339Nano), pass.Format(time.RFC3339Nano))
			}
		}
	}
	broadEndpoints := 0
	for _, ep := range snap.Endpoints {
		if ep.Labels["ring"] != "canary" {
			broadEndpoints++
		}
	}
	if broadJobs == 0 && broadEndpoints > 0 {
		t.Error("no broad-ring job was ever created")
	}
}

// counter counts events by name, safely from many goroutines.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c.n[k])
	}
	return strings.TrimSpace(b.String())
}

// skewClock is the system clock shifted by a fixed offset.
type skewClock struct{ offset time.Duration }

func (c skewClock) Now() time.Time { return time.Now().Add(c.offset) }

func (c skewClock) Sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// reconcilerStatus is the controller's status document.
type reconcilerStatus = protocol.Status

// movableClock is a controller clock the test moves forward: the system
// clock shifted by an offset the test raises, with real timers (a jump
// forward does not fire them early; the controller's re-plans after
// reports and results notice the new time).
type movableClock struct {
	clock.Real
	offset atomic.Int64
}

func (c *movableClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *movableClock) advance(d time.Duration) { c.offset.Add(int64(d)) }
