package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/e2e/faultproxy"
	"github.com/patchline/patchline/protocol"
)

// agentProc is a patch-agent process with the simulated backend.
type agentProc struct {
	*simAgent
	*proc
}

// startAgentProc runs the patch-agent binary as host in ring against
// controller.
func startAgentProc(t *testing.T, controller, host, ring string) *agentProc {
	t.Helper()
	_, bin := binaries(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(acmeSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &simAgent{host: host, ring: ring, dir: filepath.Join(dir, "state")}
	p := &agentProc{simAgent: a, proc: newProc(t, host, bin, "run", "--controller", controller, "--client", client, "--enroll-token-file", secret,
		"--state-dir", a.dir, "--labels", "ring="+ring, "--hostname", host, "--backend", "sim", "--sim-os", "linux")}
	p.run()
	return p
}

// TestAgentRidesOutControllerOutage: patchd is killed as soon as the
// rollout has made its first job and stays down (3 s; 30 s with -long).
// The patch-agent processes retry; when patchd is back every result is
// recorded once and every update installed once.
func TestAgentRidesOutControllerOutage(t *testing.T) {
	outage := 3 * time.Second
	if *long {
		outage = 30 * time.Second
	}
	repo := newFleetRepo(t, "7d", approveNothing)
	p := startPatchd(t, repo, t.TempDir(), "--lease", "5s")
	procs := []*agentProc{
		startAgentProc(t, p.base(), "acme-canary-0000", "canary"),
		startAgentProc(t, p.base(), "acme-broad-0001", "broad"),
		startAgentProc(t, p.base(), "acme-broad-0002", "broad"),
	}
	agents := make([]*simAgent, len(procs))
	for i, pr := range procs {
		agents[i] = pr.simAgent
	}
	waitEnrolled(t, p.base(), agents, 30*time.Second)
	rev := repo.approve(approveSecurity)
	waitFor(t, "the first job", 30*time.Second, func() (bool, string) {
		for _, e := range audit(t, p.base()) {
			if e.Kind == "job-created" {
				return true, ""
			}
		}
		return false, "no job yet"
	})
	p.kill()
	time.Sleep(outage)
	p.start()
	waitConverged(t, p.base(), rev, agents, 2*time.Minute+3*outage)
	for _, pr := range procs {
		pr.kill()
	}
	checkRollout(t, snapshot(t, p.base()), audit(t, p.base()), agents)
}

// TestAgentKilledBeforeAck kills the patch-agent process after it
// installed a job and while it is still trying to deliver the result,
// whose request (or answer) the proxy drops. After a restart the result
// arrives exactly once and nothing is installed again.
func TestAgentKilledBeforeAck(t *testing.T) {
	binaries(t)
	for _, tt := range []struct {
		name string
		drop faultproxy.Action
	}{
		{"the result never reached the controller", faultproxy.Action{DropRequest: true}},
		{"the controller's acknowledgement was lost", faultproxy.Action{DropResponse: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := newFleetRepo(t, "7d", approveNothing)
			c := startController(t, controllerConfig(t, repo))
			proxy, err := faultproxy.Start(c.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			var once sync.Once
			posting := make(chan struct{})
			proxy.SetRule(func(r faultproxy.Request) faultproxy.Action {
				if strings.HasSuffix(r.Path, "/result") {
					once.Do(func() { close(posting) })
					return tt.drop
				}
				return faultproxy.Action{}
			})
			a := startAgentProc(t, proxy.URL(), "acme-canary-0000", "canary")
			waitEnrolled(t, c.URL, []*simAgent{a.simAgent}, 30*time.Second)
			rev := repo.approve(approveSecurity)
			select {
			case <-posting:
			case <-time.After(30 * time.Second):
				t.Fatal("the agent never posted a result")
			}
			a.kill()
			pending := 0
			for _, e := range a.journal(t) {
				if e.Result != nil && !e.Acked {
					pending++
				}
			}
			if pending != 1 {
				t.Fatalf("after the kill the outbox holds %d results, want the 1 undelivered", pending)
			}
			installed := a.installs(t)
			proxy.SetRule(nil)
			a.run()
			waitConverged(t, c.URL, rev, []*simAgent{a.simAgent}, 30*time.Second)
			a.kill()
			if got := a.installs(t); len(got) != len(installed) {
				t.Errorf("installs after restart %v, before %v", got, installed)
			}
			checkRollout(t, snapshot(t, c.URL), audit(t, c.URL), []*simAgent{a.simAgent})
			for _, ep := range snapshot(t, c.URL).Endpoints {
				for _, u := range ep.Updates {
					if n := len(u.Attempts); n > 1 || (n == 1 && u.Attempts[0].Result != protocol.ResultSucceeded) {
						t.Errorf("%s: attempts %+v, want one success", u.ID, u.Attempts)
					}
				}
			}
		})
	}
}
