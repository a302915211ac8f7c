package plan_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// TestDecisionsNameTheRuleThatMadeThem: a decision a resume entry, the
// client's mode or a freeze brings about names that entry, not the
// approve rule that made the update desired.
func TestDecisionsNameTheRuleThatMadeThem(t *testing.T) {
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	t1, t2 := now.Add(-hours(30)), now.Add(-hours(20))
	resume := func(r schema.Resume) func(f *schema.Fleet) {
		return func(f *schema.Fleet) {
			r.Pos = pos(70)
			acme(f).Resume = []schema.Resume{r}
		}
	}
	// Two of four canaries failed: 50%, above canary's maxFailures 25%.
	halting := []*protocol.Endpoint{
		ep("c1", "canary", crit(installedAt(t1))), ep("c2", "canary", crit(installedAt(t2))),
		ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))), ep("c4", "canary", crit(failedAt(now.Add(-hours(30))))),
		ep("c5", "canary", crit()),
	}
	// Ten canaries, one of which failed three times: failed for good,
	// but 10% halts nothing.
	var failedForGood []*protocol.Endpoint
	failedForGood = append(failedForGood, ep("c0", "canary", crit(failedAt(now.Add(-hours(50)), now.Add(-hours(40)), now.Add(-hours(30))))))
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"} {
		failedForGood = append(failedForGood, ep(id, "canary", crit()))
	}
	runPlanCases(t, []planCase{
		{
			name:  "a resume entry that lifts a halt is the rule of the pairs it lets go",
			fleet: resume(schema.Resume{Update: "KB1", After: now.Add(-hours(2))}),
			eps:   halting,
			want: []want{
				{ep: "c3", update: "KB1", d: plan.Missing, rule: rule(70),
					reason: `resumed: failures before 2026-11-12 10:00 UTC are forgiven; approved by rule "critical-now"`},
				{ep: "c4", update: "KB1", d: plan.Missing, rule: rule(70)},
				{ep: "c5", update: "KB1", d: plan.Missing, rule: rule(70)},
				{ep: "c1", update: "KB1", d: plan.Installed, rule: rule(30)},
			},
			jobs: []string{"c3 canary: KB1", "c4 canary: KB1", "c5 canary: KB1"},
		},
		{
			name: "without the resume entry the same pairs are halted by the ring",
			eps:  halting,
			want: []want{{ep: "c3", update: "KB1", d: plan.Halted, rule: rule(10)}, {ep: "c5", update: "KB1", d: plan.Halted, rule: rule(10)}},
			jobs: []string{},
		},
		{
			name:  "a resume entry for the ring names its ring",
			fleet: resume(schema.Resume{Update: "KB1", Ring: "canary", After: now.Add(-hours(2))}),
			eps:   halting,
			want: []want{{ep: "c5", update: "KB1", d: plan.Missing, rule: rule(70),
				reason: `resumed in ring canary: failures before 2026-11-12 10:00 UTC are forgiven`}},
		},
		{
			name:  "a resume entry older than the failures lifts nothing and is not cited",
			fleet: resume(schema.Resume{Update: "KB1", After: now.Add(-hours(50))}),
			eps:   halting,
			want:  []want{{ep: "c5", update: "KB1", d: plan.Halted, rule: rule(10)}},
		},
		{
			name:  "a resume entry forgiving an endpoint's own failures is its rule",
			fleet: resume(schema.Resume{Source: "windows-update", Match: "KB*", After: now.Add(-hours(2))}),
			eps:   failedForGood,
			want: []want{
				{ep: "c0", update: "KB1", d: plan.Missing, rule: rule(70), reason: "resumed: failures before"},
				{ep: "c1", update: "KB1", d: plan.Missing, rule: rule(30)},
			},
		},
		{
			name: "without it the endpoint failed for good",
			eps:  failedForGood,
			want: []want{{ep: "c0", update: "KB1", d: plan.Failed, rule: rule(10)}},
		},
		{
			name:  "a resume entry for an update with no failure changes nothing",
			fleet: resume(schema.Resume{Update: "KB1", After: now.Add(-hours(2))}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit())},
			want:  []want{{ep: "c1", update: "KB1", d: plan.Missing, rule: rule(30), reason: `approved by rule "critical-now"`}},
		},
		{
			name: "report mode is the rule of every pair that would go into a job",
			fleet: func(f *schema.Fleet) {
				acme(f).Mode, acme(f).ModePos = schema.ModeReport, pos(3)
			},
			eps: []*protocol.Endpoint{ep("c1", "canary", crit()), ep("b1", "", crit())},
			want: []want{
				{ep: "c1", update: "KB1", d: plan.Missing, rule: rule(3),
					reason: `mode "report": decided, but no job is sent; approved by rule "critical-now"`},
				// The ring before, not the mode, holds this one.
				{ep: "b1", update: "KB1", d: plan.WaitingRing, rule: rule(15)},
			},
			jobs: []string{},
		},
		{
			name: "report mode comes before a resume entry",
			fleet: func(f *schema.Fleet) {
				resume(schema.Resume{Update: "KB1", After: now.Add(-hours(2))})(f)
				acme(f).Mode, acme(f).ModePos = schema.ModeReport, pos(3)
			},
			eps: halting,
			want: []want{{ep: "c5", update: "KB1", d: plan.Missing, rule: rule(3),
				reason: `mode "report": decided, but no job is sent; resumed: failures before`}},
			jobs: []string{},
		},
		{
			name: "a freeze from the root files is the rule of the pairs it holds",
			fleet: func(f *schema.Fleet) {
				acme(f).Freezes = []schema.Freeze{{From: now.Add(-hours(24)), Until: now.Add(hours(72)), Reason: "year-end close",
					Pos: schema.Pos{File: "fleet.cue", Line: 12, Col: 3}}}
			},
			eps: []*protocol.Endpoint{ep("c1", "canary", crit()), ep("c2", "canary", crit(installedAt(t1)))},
			want: []want{
				{ep: "c1", update: "KB1", d: plan.WaitingWindow, rule: "fleet.cue:12", reason: "change freeze until", eligible: now.Add(hours(72))},
				{ep: "c2", update: "KB1", d: plan.Installed, rule: rule(30)},
			},
			jobs: []string{},
		},
	})
}

// TestPlanSaysEachClientsMode: the plan lists every planned client's
// mode and where it is set, which is how a plan comparison sees a mode
// change.
func TestPlanSaysEachClientsMode(t *testing.T) {
	f := testFleet()
	f.Clients["globex"] = &schema.Client{ID: "globex", Timezone: "UTC", Mode: schema.ModeReport,
		ModePos: schema.Pos{File: "clients/globex/policy.cue", Line: 4, Col: 1}}
	f.Clients["hooli"] = &schema.Client{ID: "hooli", Timezone: "UTC", Mode: schema.ModeEnforce}
	g := ep("g1", "", kb("KB1", "critical"))
	g.Client = "globex"
	res, err := plan.Plan(f, snapshot(ep("c1", "canary", kb("KB1", "critical")), g), now, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// hooli has no endpoint: it is not planned.
	want := []plan.ClientMode{
		{Client: "acme", Mode: schema.ModeEnforce},
		{Client: "globex", Mode: schema.ModeReport, Rule: "clients/globex/policy.cue:4"},
	}
	if diff := cmp.Diff(want, res.Modes); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
}

// TestExplainCitesResumeAndMode: why names the resume entry that lets a
// pair go, says so when one names the update but changes nothing, and
// cites report mode.
func TestExplainCitesResumeAndMode(t *testing.T) {
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	snap := snapshot(
		ep("c1", "canary", crit(installedAt(now.Add(-hours(30))))), ep("c2", "canary", crit(installedAt(now.Add(-hours(20))))),
		ep("c3", "canary", crit(failedAt(now.Add(-hours(40))))), ep("c4", "canary", crit(failedAt(now.Add(-hours(30))))),
		ep("c5", "canary", crit()),
	)
	// One canary of ten failed three times: failed for good, halting
	// nothing.
	alone := []*protocol.Endpoint{ep("c0", "canary", crit(failedAt(now.Add(-hours(50)), now.Add(-hours(40)), now.Add(-hours(30)))))}
	for _, id := range []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"} {
		alone = append(alone, ep(id, "canary", crit()))
	}
	tests := []struct {
		name     string
		resume   schema.Resume
		report   bool
		eps      []*protocol.Endpoint
		endpoint string
		want     *plan.Citation
		mode     bool
	}{
		{
			name:     "the entry that forgives the endpoint's own failures",
			resume:   schema.Resume{Update: "KB1", After: now.Add(-hours(2))},
			eps:      alone,
			endpoint: "c0",
			want: &plan.Citation{Kind: "resume", Name: "KB1", Rule: rule(70),
				Detail: "failures before 2026-11-12 10:00 UTC are forgiven; without it, this endpoint's failed attempts would hold the update back"},
		},
		{
			name:     "the entry that lifts the ring's halt",
			resume:   schema.Resume{Update: "KB1", After: now.Add(-hours(2))},
			endpoint: "c5",
			want: &plan.Citation{Kind: "resume", Name: "KB1", Rule: rule(70),
				Detail: "failures before 2026-11-12 10:00 UTC are forgiven; without it, failures would halt the rollout in this ring"},
		},
		{
			name:     "an entry too old to forgive the failures",
			resume:   schema.Resume{Source: "windows-update", Match: "KB*", Ring: "canary", After: now.Add(-hours(50))},
			endpoint: "c5",
			want: &plan.Citation{Kind: "resume", Name: "windows-update:KB*", Rule: rule(70),
				Detail: "failures before 2026-11-10 10:00 UTC are forgiven in ring canary; it changes nothing here"},
		},
		{
			name:     "report mode",
			resume:   schema.Resume{Update: "KB1", After: now.Add(-hours(2))},
			report:   true,
			endpoint: "c3",
			want: &plan.Citation{Kind: "resume", Name: "KB1", Rule: rule(70),
				Detail: "failures before 2026-11-12 10:00 UTC are forgiven; without it, failures would halt the rollout in this ring"},
			mode: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFleet()
			tt.resume.Pos = pos(70)
			acme(f).Resume = []schema.Resume{tt.resume}
			if tt.report {
				acme(f).Mode, acme(f).ModePos = schema.ModeReport, pos(3)
			}
			s := snap
			if tt.eps != nil {
				s = snapshot(tt.eps...)
			}
			x, err := plan.Explain(f, s, now, tt.endpoint, "KB1")
			if err != nil {
				t.Fatal(err)
			}
			tt.want.At = &tt.resume.After
			if diff := cmp.Diff(tt.want, x.Resume); diff != "" {
				t.Errorf("resume citation (-want +got):\n%s", diff)
			}
			if tt.mode != (x.Mode != nil) {
				t.Fatalf("mode citation %+v, want one: %v", x.Mode, tt.mode)
			}
			if x.Mode != nil && (x.Mode.Rule != rule(3) || x.Mode.Name != "report") {
				t.Errorf("mode citation %+v", x.Mode)
			}
			if tt.mode && !strings.HasPrefix(x.Decision.Reason, `mode "report"`) {
				t.Errorf("decision reason %q does not name the mode", x.Decision.Reason)
			}
		})
	}
}
