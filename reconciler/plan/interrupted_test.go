package plan_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// unknownAt adds attempts of job "job-N" (N counting from 1) whose outcome
// is unknown: the agent stopped while they were installing.
func unknownAt(ts ...time.Time) func(*protocol.Update) {
	return func(u *protocol.Update) {
		for _, t := range ts {
			u.Attempts = append(u.Attempts, protocol.Attempt{At: t, Result: protocol.ResultUnknown,
				Error: "the agent stopped while installing", Job: "job-" + string(rune('0'+len(u.Attempts)+1)), Ring: "canary"})
		}
	}
}

// seenAt sets when the endpoint's last inventory report came.
func seenAt(e *protocol.Endpoint, t time.Time) *protocol.Endpoint {
	e.LastSeen = t
	return e
}

// TestInterruptedAttempts is the counting rules of an attempt whose
// outcome is unknown. The canary ring holds one endpoint and allows no
// failure (maxFailures 0, minSuccess 100%, no soak), like a one-endpoint
// ring of a real fleet; pilot comes next.
func TestInterruptedAttempts(t *testing.T) {
	oneEndpointCanary := func(f *schema.Fleet) {
		acme(f).Rings[0].MaxFailures, acme(f).Rings[0].MinSuccess, acme(f).Rings[0].Soak = 0, 1, 0
	}
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	// The interruption is 40 minutes ago; the agent's inventory after the
	// restart came 30 minutes ago, or (unverified) none since an hour ago.
	interrupted, inventory := now.Add(-40*time.Minute), now.Add(-30*time.Minute)
	pilot := func() *protocol.Endpoint { return ep("p1", "pilot", crit()) }
	tests := []struct {
		name  string
		fleet func(*schema.Fleet)
		eps   []*protocol.Endpoint
		// canary and pilot are the decisions of c1 and p1 for KB1.
		canary, pilot plan.Decision
		// reason is part of c1's reason.
		reason string
		jobs   []string
		// failed and state are the canary ring's rollout of KB1.
		failed int
		state  plan.RolloutState
	}{
		{
			name:   "no inventory since the interruption: it waits, no job, no failure",
			eps:    []*protocol.Endpoint{ep("c1", "canary", crit(unknownAt(interrupted))), pilot()},
			canary: plan.InProgress, pilot: plan.WaitingRing,
			reason: "interrupted at 2026-11-12 11:20 UTC (job job-1) (the agent stopped while installing); waiting for its inventory report",
			jobs:   []string{}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "the inventory since shows it installed: installed, a success of the ring",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted), installedAt(inventory))), inventory), pilot()},
			canary: plan.Installed, pilot: plan.Missing,
			reason: "interrupted at 2026-11-12 11:20 UTC (job job-1); verified installed by the inventory of 2026-11-12 11:30 UTC",
			jobs:   []string{"p1 pilot: KB1"}, failed: 0, state: plan.RolloutPassed,
		},
		{
			name:   "the inventory since shows it still missing: retried in the same window, not a failure",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted))), inventory), pilot()},
			canary: plan.Missing, pilot: plan.WaitingRing,
			reason: "interrupted at 2026-11-12 11:20 UTC (job job-1); still missing by the inventory of 2026-11-12 11:30 UTC, retried",
			jobs:   []string{"c1 canary: KB1"}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "the inventory that verifies it is the one the store dated it by",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(inventory))), inventory), pilot()},
			canary: plan.Missing, pilot: plan.WaitingRing,
			jobs: []string{"c1 canary: KB1"}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "interrupted again and still missing: the second interruption is a failure and halts the ring",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted.Add(-time.Hour), interrupted))), inventory), pilot()},
			canary: plan.Failed, pilot: plan.Halted,
			reason: "interrupted again (the agent stopped while installing), still missing at 2026-11-12T11:20:00Z; a second interruption counts as a failure",
			jobs:   []string{}, failed: 1, state: plan.RolloutHalted,
		},
		{
			name:   "interrupted again, not verified yet: it waits and is no failure yet",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted.Add(-time.Hour), interrupted))), interrupted.Add(-time.Minute)), pilot()},
			canary: plan.InProgress, pilot: plan.WaitingRing,
			jobs: []string{}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "interrupted again but installed after all: installed",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted.Add(-time.Hour), interrupted), installedAt(inventory))), inventory), pilot()},
			canary: plan.Installed, pilot: plan.Missing,
			jobs: []string{"p1 pilot: KB1"}, failed: 0, state: plan.RolloutPassed,
		},
		{
			name:   "a failure after an interruption is a failure",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted.Add(-time.Hour)), failedAt(interrupted))), inventory), pilot()},
			canary: plan.Failed, pilot: plan.Halted,
			jobs: []string{}, failed: 1, state: plan.RolloutHalted,
		},
		{
			name:   "an interruption after two failures makes no third failure",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(failedAt(now.Add(-hours(50)), now.Add(-hours(26))), unknownAt(interrupted))), inventory), pilot()},
			canary: plan.Missing, pilot: plan.WaitingRing,
			jobs: []string{"c1 canary: KB1"}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "repeated interruptions count up to the attempts limit",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(failedAt(now.Add(-hours(50))), unknownAt(now.Add(-hours(26)), now.Add(-hours(2)), interrupted))), inventory), pilot()},
			canary: plan.Failed, pilot: plan.Halted,
			reason: "failed 3 times, last: the agent stopped while installing; a resume entry",
			jobs:   []string{}, failed: 1, state: plan.RolloutHalted,
		},
		{
			name: "a resume entry forgives earlier interruptions: the next one is a first again",
			fleet: func(f *schema.Fleet) {
				oneEndpointCanary(f)
				acme(f).Resume = []schema.Resume{{Update: "KB1", After: interrupted.Add(-time.Minute), Pos: pos(70)}}
			},
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted.Add(-time.Hour), interrupted))), inventory), pilot()},
			canary: plan.Missing, pilot: plan.WaitingRing,
			jobs: []string{"c1 canary: KB1"}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name: "a resume entry does not retry an interruption no inventory has verified",
			fleet: func(f *schema.Fleet) {
				oneEndpointCanary(f)
				acme(f).Resume = []schema.Resume{{Update: "KB1", After: now.Add(-time.Minute), Pos: pos(70)}}
			},
			eps:    []*protocol.Endpoint{ep("c1", "canary", crit(unknownAt(interrupted)))},
			canary: plan.InProgress,
			jobs:   []string{}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "a refused job after the interruption changes nothing",
			eps:    []*protocol.Endpoint{seenAt(ep("c1", "canary", crit(unknownAt(interrupted), attempt(interrupted.Add(time.Minute), protocol.ResultRefused))), inventory), pilot()},
			canary: plan.Missing, pilot: plan.WaitingRing,
			jobs: []string{"c1 canary: KB1"}, failed: 0, state: plan.RolloutInProgress,
		},
		{
			name:   "an interruption in a closed window waits for the window, not as a failure",
			eps:    []*protocol.Endpoint{seenAt(ep("b1", "", crit(unknownAt(interrupted))), inventory)},
			canary: "", pilot: "",
			jobs: []string{}, failed: 0, state: plan.RolloutPassed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFleet()
			oneEndpointCanary(f)
			if tt.fleet != nil {
				tt.fleet(f)
			}
			res, err := plan.Plan(f, snapshot(tt.eps...), now, plan.Options{Decisions: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]plan.PairDecision{}
			for _, d := range res.Decisions {
				got[d.Endpoint] = d
			}
			if tt.canary != "" && got["c1"].Decision != tt.canary {
				t.Errorf("c1: %s (%s), want %s", got["c1"].Decision, got["c1"].Reason, tt.canary)
			}
			if tt.pilot != "" && got["p1"].Decision != tt.pilot {
				t.Errorf("p1: %s (%s), want %s", got["p1"].Decision, got["p1"].Reason, tt.pilot)
			}
			if b, ok := got["b1"]; ok && b.Decision != plan.WaitingWindow {
				t.Errorf("b1: %s (%s), want %s", b.Decision, b.Reason, plan.WaitingWindow)
			}
			if tt.reason != "" && !strings.Contains(got["c1"].Reason, tt.reason) {
				t.Errorf("c1 reason %q, want it to contain %q", got["c1"].Reason, tt.reason)
			}
			jobs := []string{}
			for _, j := range res.Jobs {
				jobs = append(jobs, j.Endpoint+" "+j.Ring+": "+strings.Join(j.Updates, " "))
			}
			if diff := cmp.Diff(tt.jobs, jobs); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
			for _, r := range res.Rollouts {
				if r.Update == "KB1" && r.Ring == "canary" && (r.Failed != tt.failed || r.State != tt.state) {
					t.Errorf("canary rollout: %d failed, %s (%s); want %d failed, %s", r.Failed, r.State, r.Reason, tt.failed, tt.state)
				}
			}
		})
	}
}

// TestRetryAfterInterruptionIsANewJob: the job that retries an update
// still missing after an interruption has another idempotency key than
// the interrupted job had in the same window, so neither the store nor
// the agent takes it for the interrupted one; re-planning it gives the
// same key again.
func TestRetryAfterInterruptionIsANewJob(t *testing.T) {
	interrupted, inventory := now.Add(-40*time.Minute), now.Add(-30*time.Minute)
	keyOf := func(e *protocol.Endpoint) string {
		t.Helper()
		res, err := plan.Plan(testFleet(), snapshot(e), now, plan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Jobs) != 1 {
			t.Fatalf("jobs %+v, want one", res.Jobs)
		}
		return res.Jobs[0].IdempotencyKey
	}
	first := keyOf(ep("c1", "canary", kb("KB1", "critical")))
	retry := keyOf(seenAt(ep("c1", "canary", kb("KB1", "critical", unknownAt(interrupted))), inventory))
	again := keyOf(seenAt(ep("c1", "canary", kb("KB1", "critical", unknownAt(interrupted))), inventory.Add(time.Minute)))
	if retry == first {
		t.Error("the retry after an interruption has the interrupted job's key")
	}
	if again != retry {
		t.Error("re-planning the retry changed its key")
	}
}

// TestExplainCountsInterruptions: `patchctl why` says how many of an
// update's attempts were interrupted and how many failures count.
func TestExplainCountsInterruptions(t *testing.T) {
	interrupted, inventory := now.Add(-40*time.Minute), now.Add(-30*time.Minute)
	tests := []struct {
		name                  string
		u                     *protocol.Update
		seen                  time.Time
		interruptions, failed int
		decision              plan.Decision
	}{
		{"one interruption, verified", kb("KB1", "critical", unknownAt(interrupted)), inventory, 1, 0, plan.Missing},
		{"one interruption, not verified yet", kb("KB1", "critical", unknownAt(interrupted)), now.Add(-time.Hour), 1, 0, plan.InProgress},
		{"two interruptions: one failure", kb("KB1", "critical", unknownAt(interrupted.Add(-time.Hour), interrupted)), inventory, 2, 1, plan.Failed},
		{"a failure and an interruption", kb("KB1", "critical", failedAt(now.Add(-hours(26))), unknownAt(interrupted)), inventory, 1, 1, plan.Missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := plan.Explain(testFleet(), snapshot(seenAt(ep("c1", "canary", tt.u), tt.seen)), now, "c1", "KB1")
			if err != nil {
				t.Fatal(err)
			}
			if x.Interruptions != tt.interruptions || x.FailedAttempts != tt.failed || x.Decision.Decision != tt.decision {
				t.Errorf("interruptions %d, failed attempts %d, %s (%s); want %d, %d, %s",
					x.Interruptions, x.FailedAttempts, x.Decision.Decision, x.Decision.Reason, tt.interruptions, tt.failed, tt.decision)
			}
		})
	}
}
