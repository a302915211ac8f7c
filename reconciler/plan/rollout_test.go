package plan_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

func TestRings(t *testing.T) {
	t1, t2 := now.Add(-hours(30)), now.Add(-hours(20))
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	stale := func(e *protocol.Endpoint) *protocol.Endpoint { e.LastSeen = now.Add(-8 * 24 * time.Hour); return e }
	runPlanCases(t, []planCase{
		{
			name: "pilot waits while canary is below minSuccess",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit()), ep("c3", "canary", crit()), ep("c4", "canary", crit()),
				ep("p1", "pilot", crit()),
			},
			want: []want{
				{ep: "c2", update: "KB1", d: plan.Missing},
				{ep: "p1", update: "KB1", d: plan.WaitingRing, rule: rule(10), reason: "ring pilot waits for ring canary: 1 of 4 installed, needs 50%", noEligible: true},
			},
			jobs: []string{"c2 canary: KB1", "c3 canary: KB1", "c4 canary: KB1"},
		},
		{
			name: "canary passed at its second install: pilot soaks until pass + 24h",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))), ep("c3", "canary", crit()), ep("c4", "canary", crit()),
				ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, rule: rule(10), eligible: t2.Add(hours(24)), reason: "to soak 1d"}},
		},
		{
			name: "pilot starts once canary's soak has elapsed",
			now:  t2.Add(hours(24)),
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))), ep("c3", "canary", crit()), ep("c4", "canary", crit()),
				ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing, ring: "pilot"}},
		},
		{
			name: "broad waits for pilot's 48h soak after canary passed",
			now:  t2.Add(hours(25)),
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))),
				ep("p1", "pilot", crit(installedAt(t2.Add(hours(24).Abs()+time.Minute)))),
				ep("b1", "", crit()),
			},
			want: []want{{ep: "b1", update: "KB1", d: plan.WaitingRing, rule: rule(15), eligible: t2.Add(hours(24) + time.Minute + hours(48))}},
		},
		{
			name: "canary endpoints that had the update before they first reported pass at its release, not in year 1",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installed, released(now.Add(-hours(2))))), ep("c2", "canary", crit(installed, released(now.Add(-hours(2))))),
				ep("p1", "pilot", crit(released(now.Add(-hours(2))))),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, eligible: now.Add(-hours(2)).Add(hours(24)), reason: "to soak 1d"}},
		},
		{
			name: "an empty canary passes at once and adds no soak",
			eps:  []*protocol.Endpoint{ep("p1", "pilot", crit())},
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "stale canary endpoints do not count towards its progress",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), stale(ep("c2", "canary", crit())), stale(ep("c3", "canary", crit())),
				ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "excluded canary endpoints do not count towards its progress",
			fleet: func(f *schema.Fleet) {
				acme(f).Exclusions = []schema.Exclusion{{Update: "KB1", Select: schema.Selector{Endpoints: []string{"c2", "c3"}},
					Reason: "kiosk", Until: now.Add(hours(100)), Pos: pos(50)}}
			},
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit()), ep("c3", "canary", crit()),
				ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "installed without a time counts as installed long ago",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installed)), ep("p1", "pilot", crit()),
			},
			// The pass is clamped to when the canary could start, the release.
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "canary failure share above maxFailures halts canary and every later ring",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))),
				ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))), ep("c4", "canary", crit(failedAt(now.Add(-hours(40))))),
				ep("c5", "canary", crit()),
				ep("p1", "pilot", crit()), ep("b1", "", crit()),
			},
			want: []want{
				{ep: "c5", update: "KB1", d: plan.Halted, rule: rule(10), reason: "halted in ring canary: 2 of 5 endpoints failed (40%), above maxFailures 25%"},
				{ep: "c3", update: "KB1", d: plan.Halted},
				{ep: "p1", update: "KB1", d: plan.Halted, rule: rule(10)},
				{ep: "b1", update: "KB1", d: plan.Halted, rule: rule(10)},
			},
			jobs: []string{},
		},
		{
			name: "failure share equal to maxFailures does not halt",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))),
				ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))), ep("c4", "canary", crit()),
			},
			want: []want{{ep: "c4", update: "KB1", d: plan.Missing}, {ep: "c3", update: "KB1", d: plan.Missing}},
		},
		{
			name: "a resume entry newer than the failures lifts the halt and retries",
			fleet: func(f *schema.Fleet) {
				acme(f).Resume = []schema.Resume{{Update: "KB1", After: now.Add(-hours(2)), Pos: pos(70)}}
			},
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))),
				ep("c3", "canary", crit(failedAt(now.Add(-hours(40)), now.Add(-hours(30)), now.Add(-hours(20))))),
				ep("c4", "canary", crit(failedAt(now.Add(-hours(40))))),
			},
			want: []want{{ep: "c3", update: "KB1", d: plan.Missing}, {ep: "c4", update: "KB1", d: plan.Missing}},
		},
		{
			name: "a resume entry for another ring does not forgive",
			fleet: func(f *schema.Fleet) {
				acme(f).Resume = []schema.Resume{{Update: "KB1", Ring: "pilot", After: now.Add(-hours(2)), Pos: pos(70)}}
			},
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(failedAt(now.Add(-hours(40))))),
				ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))),
			},
			want: []want{{ep: "c1", update: "KB1", d: plan.Installed}, {ep: "c2", update: "KB1", d: plan.Halted}},
		},
		{
			name: "a resume entry older than the failure does not forgive it",
			fleet: func(f *schema.Fleet) {
				acme(f).Resume = []schema.Resume{{Source: "windows-update", Match: "KB*", After: now.Add(-hours(50)), Pos: pos(70)}}
			},
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(failedAt(now.Add(-hours(40))))),
			},
			want: []want{{ep: "c1", update: "KB1", d: plan.Halted}},
		},
		{
			name: "maxConcurrent caps open jobs in a ring, picking endpoints by id",
			fleet: func(f *schema.Fleet) {
				acme(f).Rings[0].MaxConcurrent = 3
			},
			eps: []*protocol.Endpoint{
				ep("c5", "canary", crit()), ep("c2", "canary", crit()), ep("c9", "canary", crit(inFlight("job-1"))),
				ep("c1", "canary", crit()), ep("c3", "canary", crit()),
			},
			want: []want{
				{ep: "c9", update: "KB1", d: plan.InProgress},
				{ep: "c1", update: "KB1", d: plan.Missing},
				{ep: "c2", update: "KB1", d: plan.Missing},
				{ep: "c3", update: "KB1", d: plan.WaitingRing, rule: rule(10), reason: "ring canary at maxConcurrent 3"},
				{ep: "c5", update: "KB1", d: plan.WaitingRing},
			},
			jobs: []string{"c1 canary: KB1", "c2 canary: KB1"},
		},
	})
}

func TestRollouts(t *testing.T) {
	t1, t2 := now.Add(-hours(30)), now.Add(-hours(20))
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	snap := snapshot(
		ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))),
		ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))), ep("c4", "canary", crit()),
		ep("p1", "pilot", crit()),
	)
	res, err := plan.Plan(testFleet(), snap, now, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	released := now.Add(-10 * 24 * time.Hour)
	soakEnd := t2.Add(hours(24))
	want := []plan.Rollout{
		{Client: "acme", Update: "KB1", Ring: "canary", Counted: 4, Succeeded: 2, Failed: 1, Share: 0.5, FailureShare: 0.25,
			State: plan.RolloutPassed, EligibleAt: &released, PassedAt: &t2, Rule: rule(10)},
		{Client: "acme", Update: "KB1", Ring: "pilot", Counted: 1, State: plan.RolloutWaiting, EligibleAt: &soakEnd, Rule: rule(15),
			Reason: "ring pilot waits for ring canary to soak 1d after it passed at " + t2.Format(time.RFC3339)},
		{Client: "acme", Update: "KB1", Ring: "broad", State: plan.RolloutWaiting, Rule: rule(20),
			Reason: "ring broad waits for ring pilot, which has not started"},
	}
	if diff := cmp.Diff(want, res.Rollouts); diff != "" {
		t.Errorf("rollouts (-want +got):\n%s", diff)
	}
}
