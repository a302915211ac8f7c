package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/internal/e2e/faultproxy"
	"github.com/patchline/patchline/protocol"
)

// approveCritical approves only critical security updates.
const approveCritical = `[{name: "critical", category: ["security"], minSeverity: "critical"}]`

// tamper rewrites the job answers the proxy passes to agents. fn sees the
// endpoint that polled and the controller's real signed jobs, and returns
// what the agent gets.
type tamper struct {
	mu sync.Mutex // guards fn and posted
	fn func(endpoint string, jobs []protocol.SignedJob) []protocol.SignedJob
	// posted are the results agents posted, by job id.
	posted map[string][]protocol.ResultRequest
}

func (tm *tamper) set(fn func(string, []protocol.SignedJob) []protocol.SignedJob) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.fn = fn
}

func (tm *tamper) results(job string) []protocol.ResultRequest {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.posted[job]
}

func (tm *tamper) rule(r faultproxy.Request) faultproxy.Action {
	if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/result") {
		var rr protocol.ResultRequest
		if json.Unmarshal(r.Body, &rr) == nil {
			tm.mu.Lock()
			if tm.posted == nil {
				tm.posted = map[string][]protocol.ResultRequest{}
			}
			tm.posted[rr.Job] = append(tm.posted[rr.Job], rr)
			tm.mu.Unlock()
		}
		return faultproxy.Action{}
	}
	if r.Path != protocol.PathJobs {
		return faultproxy.Action{}
	}
	ep := r.Header.Get(protocol.HeaderEndpoint)
	return faultproxy.Action{Rewrite: func(status int, body []byte) []byte {
		var resp protocol.JobsResponse
		if status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
			return body
		}
		tm.mu.Lock()
		fn := tm.fn
		tm.mu.Unlock()
		if fn == nil {
			return body
		}
		out, err := json.Marshal(protocol.JobsResponse{Jobs: fn(ep, resp.Jobs)})
		if err != nil {
			return body
		}
		return out
	}}
}

// attackRig is a controller, a tampering proxy and its fleet repo.
type attackRig struct {
	repo *fleetRepo
	base string
	url  string // the proxy's, for agents
	tm   *tamper
}

func newAttackRig(t *testing.T, lease time.Duration) *attackRig {
	t.Helper()
	repo := newFleetRepo(t, "7d", approveNothing)
	cfg := controllerConfig(t, repo)
	cfg.Lease = lease
	// Short long-polls: empty answers, which the tamperer fills with
	// replays, come often.
	cfg.LongPollMax = time.Second
	c := startController(t, cfg)
	proxy, err := faultproxy.Start(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	tm := &tamper{}
	proxy.SetRule(tm.rule)
	return &attackRig{repo: repo, base: c.URL, url: proxy.URL(), tm: tm}
}

// attempts lists the attempts the controller stored for an endpoint.
func attempts(t *testing.T, base, endpoint string) []protocol.Attempt {
	t.Helper()
	var out []protocol.Attempt
	for _, ep := range snapshot(t, base).Endpoints {
		if ep.ID != endpoint {
			continue
		}
		for _, u := range ep.Updates {
			out = append(out, u.Attempts...)
		}
	}
	return out
}

// waitRefused waits until the controller stored a refused attempt for the
// endpoint whose error mentions reason.
func waitRefused(t *testing.T, base, endpoint, reason string) {
	t.Helper()
	waitFor(t, "a refusal mentioning "+reason, 30*time.Second, func() (bool, string) {
		as := attempts(t, base, endpoint)
		for _, a := range as {
			if a.Result == protocol.ResultRefused && strings.Contains(a.Error, reason) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", as)
	})
}

func noInstalls(t *testing.T, a *simAgent) {
	t.Helper()
	if got := a.installs(t); len(got) != 0 {
		t.Errorf("%s installed %v from a job it should have refused", a.host, got)
	}
}

// flip returns a copy of b with one byte changed.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// TestSignedJobAttacks tampers with the controller's real signed jobs on
// their way to an agent. Each forged, expired, foreign or out-of-order job
// is refused: nothing is installed, and the controller records the
// refusal (or, for a job of another endpoint, refuses to take it).
func TestSignedJobAttacks(t *testing.T) {
	tests := []struct {
		name   string
		reason string // in the stored refusal
		mangle func(j protocol.SignedJob) protocol.SignedJob
	}{
		{"a flipped byte in the signature", "signature does not verify", func(j protocol.SignedJob) protocol.SignedJob {
			j.Signature = flip(j.Signature, len(j.Signature)-1)
			return j
		}},
		{"a flipped byte in the signed payload", "signature does not verify", func(j protocol.SignedJob) protocol.SignedJob {
			i := bytes.Index(j.Payload, []byte(`"revision":"`)) + len(`"revision":"`) + 3
			j.Payload = flip(j.Payload, i)
			return j
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := newAttackRig(t, time.Hour)
			rig.tm.set(func(_ string, jobs []protocol.SignedJob) []protocol.SignedJob {
				for i := range jobs {
					jobs[i] = tt.mangle(jobs[i])
				}
				return jobs
			})
			a := startAgent(t, rig.url, "acme-canary-victim", "canary", agentOptions{})
			waitEnrolled(t, rig.base, []*simAgent{a}, 30*time.Second)
			rig.repo.approve(approveSecurity)
			waitRefused(t, rig.base, a.endpoint(), tt.reason)
			noInstalls(t, a)
		})
	}

	t.Run("an expired job", func(t *testing.T) {
		rig := newAttackRig(t, time.Hour)
		// The agent's clock is three days ahead: every job's window has
		// closed by its reckoning.
		a := startAgent(t, rig.url, "acme-canary-late", "canary", agentOptions{clock: skewClock{offset: 72 * time.Hour}})
		waitEnrolled(t, rig.base, []*simAgent{a}, 30*time.Second)
		rig.repo.approve(approveSecurity)
		waitRefused(t, rig.base, a.endpoint(), "expired")
		noInstalls(t, a)
	})

	t.Run("a job for another endpoint", func(t *testing.T) {
		rig := newAttackRig(t, time.Hour)
		victim := startAgent(t, rig.url, "acme-canary-victim", "canary", agentOptions{})
		other := startAgent(t, rig.url, "acme-canary-other", "canary", agentOptions{})
		waitEnrolled(t, rig.base, []*simAgent{victim, other}, 30*time.Second)
		var mu sync.Mutex
		var stolen []protocol.SignedJob
		rig.tm.set(func(ep string, jobs []protocol.SignedJob) []protocol.SignedJob {
			mu.Lock()
			defer mu.Unlock()
			switch ep {
			case other.endpoint():
				stolen = append(stolen, jobs...)
				return jobs
			case victim.endpoint():
				return stolen
			}
			return jobs
		})
		rig.repo.approve(approveSecurity)
		var job string
		waitFor(t, "the victim to refuse the other endpoint's job", 30*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for _, sj := range stolen {
				for _, rr := range rig.tm.results(openJob(t, sj).ID) {
					if rr.Refused && strings.Contains(rr.Reason, "is for endpoint") {
						job = rr.Job
						return true, ""
					}
				}
			}
			return false, fmt.Sprintf("%d jobs stolen", len(stolen))
		})
		noInstalls(t, victim)
		for _, a := range attempts(t, rig.base, victim.endpoint()) {
			t.Errorf("victim has an attempt recorded: %+v", a)
		}
		// The other endpoint's own result for that job is recorded as it
		// sent it, and the refusal did not replace it.
		waitFor(t, "the other endpoint's result", 30*time.Second, func() (bool, string) {
			as := attempts(t, rig.base, other.endpoint())
			for _, a := range as {
				if a.Job == job && a.Result != protocol.ResultSucceeded {
					t.Fatalf("the other endpoint's job was marked %s by the victim's refusal", a.Result)
				}
			}
			return len(as) > 0 && other.settled(t), fmt.Sprintf("%+v", as)
		})
	})

	t.Run("a replay of a finished job", func(t *testing.T) {
		rig := newAttackRig(t, time.Hour)
		a := startAgent(t, rig.url, "acme-canary-victim", "canary", agentOptions{})
		waitEnrolled(t, rig.base, []*simAgent{a}, 30*time.Second)
		var mu sync.Mutex
		var seen []protocol.SignedJob
		rig.tm.set(func(_ string, jobs []protocol.SignedJob) []protocol.SignedJob {
			mu.Lock()
			defer mu.Unlock()
			if len(jobs) > 0 {
				seen = append(seen, jobs...)
				return jobs
			}
			// Every empty answer carries the old jobs again.
			return seen
		})
		rev := rig.repo.approve(approveSecurity)
		waitConverged(t, rig.base, rev, []*simAgent{a}, 30*time.Second)
		// Let the agent see the replays a few times.
		waitFor(t, "replays answered", 30*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, sj := range seen {
				n += len(rig.tm.results(openJob(t, sj).ID))
			}
			return n >= 3*len(seen), fmt.Sprintf("%d results for %d jobs", n, len(seen))
		})
		for u, n := range a.installs(t) {
			if n != 1 {
				t.Errorf("%s installed %d times after replays, want once", u, n)
			}
		}
		for _, at := range attempts(t, rig.base, a.endpoint()) {
			if at.Result != protocol.ResultSucceeded {
				t.Errorf("replay left an attempt %+v", at)
			}
		}
	})

	t.Run("a lower sequence number after a higher one", func(t *testing.T) {
		// Two real jobs for one endpoint, the older one held back and
		// delivered after the newer: the agent refuses the older.
		// The lease outlasts the second commit, so the newer job is made
		// while the older one is still out.
		rig := newAttackRig(t, 3*time.Second)
		host := hostWithMixedSeverities(t)
		a := startAgent(t, rig.url, host, "canary", agentOptions{})
		waitEnrolled(t, rig.base, []*simAgent{a}, 30*time.Second)
		var mu sync.Mutex
		var held []protocol.SignedJob
		rig.tm.set(func(_ string, jobs []protocol.SignedJob) []protocol.SignedJob {
			mu.Lock()
			defer mu.Unlock()
			if len(held) == 0 && len(jobs) > 0 {
				held = jobs // the first job goes missing
				return nil
			}
			if len(jobs) > 1 && openJob(t, jobs[0]).Seq < openJob(t, jobs[1]).Seq {
				jobs[0], jobs[1] = jobs[1], jobs[0]
			}
			return jobs
		})
		waitRevision(t, rig.base, rig.repo.approve(approveCritical))
		waitFor(t, "the first job held back", 30*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return len(held) > 0, ""
		})
		rig.repo.approve(approveSecurity)
		waitRefused(t, rig.base, a.endpoint(), "not above")
		mu.Lock()
		first := openJob(t, held[0])
		mu.Unlock()
		// The controller plans the refused updates again (a new job from
		// the newer revision); none is installed twice and the refused
		// job itself ran nothing.
		for u, n := range a.installs(t) {
			if n > 1 {
				t.Errorf("%s installed %d times", u, n)
			}
		}
		for _, at := range attempts(t, rig.base, a.endpoint()) {
			if at.Job == first.ID && at.Result != protocol.ResultRefused {
				t.Errorf("the older job %s has a %s attempt; want it refused", first.ID, at.Result)
			}
		}
	})
}

// openJob decodes a signed job without checking it.
func openJob(t *testing.T, sj protocol.SignedJob) protocol.JobPayload {
	t.Helper()
	var p protocol.JobPayload
	if err := json.Unmarshal(sj.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostWithMixedSeverities finds a canary host name whose simulated machine
// misses both a critical and a less severe security update, so approving
// critical ones and then the rest makes two jobs.
func hostWithMixedSeverities(t *testing.T) string {
	t.Helper()
	for i := range 1000 {
		host := fmt.Sprintf("acme-canary-mixed-%d", i)
		b, err := sim.New(sim.Options{Seed: hostSeed(host), Family: "linux"})
		if err != nil {
			t.Fatal(err)
		}
		ups, err := b.Inventory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		crit, other := false, false
		for _, u := range ups {
			if u.Installed || u.Category != "security" {
				continue
			}
			crit = crit || u.Severity == "critical"
			other = other || u.Severity != "critical"
		}
		if crit && other {
			return host
		}
	}
	t.Fatal("no simulated host misses both critical and other security updates")
	return ""
}

// TestLateDuplicateReportKeepsInstall: a copy of an inventory report made
// before a job ran, delivered late by the network after the agent's newer
// report, must not make the controller forget the install.
func TestLateDuplicateReportKeepsInstall(t *testing.T) {
	rig := newAttackRig(t, time.Hour)
	var mu sync.Mutex
	var first *faultproxy.Request
	rig2, err := faultproxy.Start(rig.base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig2.Close() })
	rig2.SetRule(func(r faultproxy.Request) faultproxy.Action {
		if r.Path == protocol.PathReport {
			mu.Lock()
			if first == nil {
				c := r
				first = &c
			}
			mu.Unlock()
		}
		return faultproxy.Action{}
	})
	a := startAgent(t, rig2.URL(), "acme-canary-0000", "canary", agentOptions{})
	waitEnrolled(t, rig.base, []*simAgent{a}, 30*time.Second)
	rev := rig.repo.approve(approveSecurity)
	waitConverged(t, rig.base, rev, []*simAgent{a}, 30*time.Second)

	// The network delivers the old report now.
	mu.Lock()
	old := first
	mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, rig.base+protocol.PathReport, bytes.NewReader(old.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = old.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("late duplicate report answered %d", resp.StatusCode)
	for _, ep := range snapshot(t, rig.base).Endpoints {
		for _, u := range ep.Updates {
			if a.installs(t)[u.ID] > 0 && !u.Installed {
				t.Errorf("%s: installed by a job, but the late copy of an older report made the controller think it is missing", u.ID)
			}
		}
	}
}
