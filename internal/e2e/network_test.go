package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/e2e/faultproxy"
	"github.com/patchline/patchline/protocol"
)

// TestRolloutThroughFaultyNetwork runs a rollout through a proxy that
// drops requests and answers, sends late duplicates and delays requests so
// they overtake each other, all from a seeded generator. The guarantees are
// those of a clean run: each update installed once per endpoint, each
// result stored once, no ring started early.
func TestRolloutThroughFaultyNetwork(t *testing.T) {
	agents, within := 30, 90*time.Second
	if *long {
		agents, within = 200, 10*time.Minute
	}
	repo := newFleetRepo(t, "7d", approveNothing)
	cfg := controllerConfig(t, repo)
	// A dropped answer to a long-poll leaves its job leased; a short lease
	// offers it again.
	cfg.Lease = 2 * time.Second
	c := startController(t, cfg)

	proxy, err := faultproxy.Start(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	var seen counter
	rule, err := faultproxy.Chaos{
		Seed: seed(t), DropRequest: 0.05, DropResponse: 0.05, Duplicate: 0.1, Delay: 0.2, MaxDelay: 300 * time.Millisecond,
	}.Rule()
	if err != nil {
		t.Fatal(err)
	}
	proxy.SetRule(func(r faultproxy.Request) faultproxy.Action {
		a := rule(r)
		seen.add(fmt.Sprintf("%s/drop-req:%v/drop-resp:%v/dup:%v", route(r.Path), a.DropRequest, a.DropResponse, a.Duplicate))
		return a
	})

	// Frequent reports: see TestLateDuplicateReportKeepsInstall for what a
	// late duplicate of an old report does until the next one.
	fleet := startSimAgents(t, proxy.URL(), agents, 3, agentOptions{reportEvery: 2 * time.Second})
	waitEnrolled(t, c.URL, fleet, within)
	rev := repo.approve(approveSecurity)
	waitConverged(t, c.URL, rev, fleet, within)
	for _, a := range fleet {
		a.stop(t)
	}
	// Late duplicates still on their way land before the check.
	proxy.Close()
	t.Logf("faults by route: %s", seen.String())
	checkRollout(t, snapshot(t, c.URL), audit(t, c.URL), fleet)
}

// route names a request path by its route, without ids.
func route(path string) string {
	if strings.HasSuffix(path, "/result") {
		return "result"
	}
	return strings.TrimPrefix(path, "/v1/")
}

// TestPartitionedRingAgents cuts 30% of the broad ring's agents off the
// controller after they enrolled. The rest of the ring converges; the
// rollout is not halted (unreachable endpoints are not failures); once the
// controller's clock passes staleAfter the cut-off endpoints show as
// stale, and never as compliant.
func TestPartitionedRingAgents(t *testing.T) {
	repo := newFleetRepo(t, "1m", approveNothing)
	cfg := controllerConfig(t, repo)
	clock := &movableClock{}
	cfg.Clock = clock
	c := startController(t, cfg)
	proxy, err := faultproxy.Start(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	// 3 canary and 10 broad agents; 3 of the broad ones are cut off.
	fleet := startSimAgents(t, proxy.URL(), 13, 3, agentOptions{reportEvery: 300 * time.Millisecond})
	waitEnrolled(t, c.URL, fleet, 30*time.Second)
	var mu sync.Mutex // guards cut
	cut := map[string]bool{}
	for _, a := range fleet[3:6] {
		cut[a.endpoint()] = true
	}
	var blocked counter
	proxy.SetRule(func(r faultproxy.Request) faultproxy.Action {
		mu.Lock()
		defer mu.Unlock()
		if cut[r.Header.Get(protocol.HeaderEndpoint)] {
			blocked.add(route(r.Path))
			return faultproxy.Action{DropRequest: true}
		}
		return faultproxy.Action{}
	})
	waitRevision(t, c.URL, repo.approve(approveSecurity))

	reachable := append(append([]*simAgent{}, fleet[:3]...), fleet[6:]...)
	waitFor(t, "the reachable agents to converge", 60*time.Second, func() (bool, string) {
		for _, a := range reachable {
			if !a.settled(t) || len(a.installs(t)) == 0 && a.ring == "canary" {
				return false, a.host + " not settled"
			}
		}
		cs := clientStatus(status(t, c.URL), client)
		return cs.Compliant == len(reachable), fmt.Sprintf("%+v", cs)
	})
	// Time passes on the controller; the reachable agents keep reporting.
	clock.advance(5 * time.Minute)
	waitFor(t, "the cut-off endpoints to go stale", 30*time.Second, func() (bool, string) {
		cs := clientStatus(status(t, c.URL), client)
		return cs.Stale == 3 && cs.Compliant == len(reachable), fmt.Sprintf("%+v", cs)
	})
	cs := clientStatus(status(t, c.URL), client)
	if len(cs.Halted) != 0 {
		t.Errorf("rollout halted by unreachable endpoints: %+v", cs.Halted)
	}
	if cs.Compliant+cs.Stale > cs.Endpoints || cs.Compliant != 10 {
		t.Errorf("status %+v: want the 10 reachable endpoints compliant and the 3 cut off stale, not compliant", cs)
	}
	snap := snapshot(t, c.URL)
	for _, ep := range snap.Endpoints {
		for _, u := range ep.Updates {
			for _, at := range u.Attempts {
				switch {
				case cut[ep.ID]:
					t.Errorf("cut-off %s: %s has an attempt %+v that could not have reached the controller", ep.Hostname, u.ID, at)
				case at.Result != "succeeded":
					t.Errorf("%s %s: attempt %s (%s): the partition made a failure", ep.Hostname, u.ID, at.Result, at.Error)
				}
			}
		}
	}
	t.Logf("requests of cut-off agents dropped: %s", blocked.String())
	if blocked.String() == "" {
		t.Error("the partition blocked nothing")
	}
}
