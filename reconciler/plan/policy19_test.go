package plan_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// policyCase is one scenario of the policy of issue 19 (minEndpoints,
// emergency entries, guard deferrals, failed pre scripts): the decisions
// it must make, and every decision and job written to the golden file,
// whose reasons are what `patchctl why` shows.
type policyCase struct {
	name  string
	fleet func(f *schema.Fleet)
	now   time.Time
	eps   []*protocol.Endpoint
	want  []want
}

func emergency(e schema.Emergency) func(f *schema.Fleet) {
	return func(f *schema.Fleet) {
		e.Pos = pos(60)
		if e.Reason == "" {
			e.Reason = "CVE-2026-1234 actively exploited"
		}
		if e.Until.IsZero() {
			e.Until = time.Date(2026, 12, 11, 0, 0, 0, 0, time.UTC)
		}
		acme(f).Emergency = append(acme(f).Emergency, e)
	}
}

func both(fs ...func(f *schema.Fleet)) func(f *schema.Fleet) {
	return func(f *schema.Fleet) {
		for _, fn := range fs {
			fn(f)
		}
	}
}

func minEndpoints(canary, pilot int) func(f *schema.Fleet) {
	return func(f *schema.Fleet) { acme(f).Rings[0].MinEndpoints, acme(f).Rings[1].MinEndpoints = canary, pilot }
}

func freezeAll(f *schema.Fleet) {
	acme(f).Freezes = []schema.Freeze{{From: now.Add(-hours(24)), Until: now.Add(hours(72)), Reason: "year-end close", Pos: pos(50)}}
}

func excludeOnCanary(f *schema.Fleet) {
	acme(f).Exclusions = []schema.Exclusion{{Update: "KB1", Select: schema.Selector{Labels: map[string]string{"ring": "canary"}},
		Reason: "breaks the EHR app", Until: now.Add(hours(24 * 30)), Pos: pos(45)}}
}

func rollbackOf(update string, sel schema.Selector) func(f *schema.Fleet) {
	return func(f *schema.Fleet) {
		acme(f).Rollback = append(acme(f).Rollback, schema.Rollback{Update: update, Select: sel, Reason: "breaks label printing", Ticket: "PSA-1410", Pos: pos(70)})
	}
}

func rolledBack(t time.Time, r protocol.Result) func(*protocol.Update) {
	return func(u *protocol.Update) {
		u.Attempts = append(u.Attempts, protocol.Attempt{At: t, Result: r, Action: protocol.ActionRollback, Error: map[bool]string{true: "", false: "0x80070005"}[r == protocol.ResultSucceeded]})
		if r == protocol.ResultSucceeded {
			u.Installed, u.InstalledAt = false, nil
		}
	}
}

func result(t time.Time, r protocol.Result, msg string) func(*protocol.Update) {
	return func(u *protocol.Update) {
		u.Attempts = append(u.Attempts, protocol.Attempt{At: t, Result: r, Error: msg, Ring: "broad"})
	}
}

func TestPolicy19(t *testing.T) {
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	stale := func(e *protocol.Endpoint) *protocol.Endpoint { e.LastSeen = now.Add(-8 * 24 * time.Hour); return e }
	long := installedAt(now.Add(-hours(24 * 9)))
	recent := installedAt(now.Add(-hours(2)))
	yesterday23 := time.Date(2026, 11, 11, 23, 0, 0, 0, time.UTC)
	cases := []policyCase{
		{
			name:  "minEndpoints: a canary whose only endpoint is stale holds the pilot",
			fleet: minEndpoints(1, 1),
			eps:   []*protocol.Endpoint{stale(ep("c1", "canary", crit())), ep("p1", "pilot", crit())},
			want: []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, rule: rule(10),
				reason: "ring pilot waits: ring canary has 0 of 1 required reporting endpoints"}},
		},
		{
			name:  "minEndpoints: a canary whose endpoints are all excluded holds the pilot",
			fleet: both(minEndpoints(1, 1), excludeOnCanary),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit()), ep("p1", "pilot", crit())},
			want: []want{
				{ep: "c1", update: "KB1", d: plan.Excluded},
				{ep: "p1", update: "KB1", d: plan.WaitingRing, reason: "ring canary has 0 of 1 required reporting endpoints"},
			},
		},
		{
			name:  "minEndpoints: a canary without endpoints holds the pilot",
			fleet: minEndpoints(1, 1),
			eps:   []*protocol.Endpoint{ep("p1", "pilot", crit())},
			want:  []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, reason: "ring canary has 0 of 1 required reporting endpoints"}},
		},
		{
			name:  "minEndpoints above minSuccess: one of two installed meets 50% but not minEndpoints 2",
			fleet: minEndpoints(2, 1),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("c2", "canary", crit()), ep("p1", "pilot", crit())},
			want: []want{{ep: "p1", update: "KB1", d: plan.WaitingRing,
				reason: "ring pilot waits: ring canary has 1 of 2 required endpoints with the update installed (minEndpoints)"}},
		},
		{
			name:  "minEndpoints met: the pilot starts after the canary's soak",
			fleet: minEndpoints(1, 1),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit())},
			want:  []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name:  "minEndpoints 0 keeps today's rule: an empty canary passes at once",
			fleet: minEndpoints(0, 0),
			eps:   []*protocol.Endpoint{ep("p1", "pilot", crit())},
			want:  []want{{ep: "p1", update: "KB1", d: plan.Missing}},
		},
		{
			name:  "emergency with skipSoak: the pilot starts as soon as the canary passed",
			fleet: emergency(schema.Emergency{Update: "KB1", SkipSoak: true}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(recent)), ep("p1", "pilot", crit())},
			want: []want{{ep: "p1", update: "KB1", d: plan.Missing, rule: rule(60),
				reason: "emergency: CVE-2026-1234 actively exploited through 2026-12-10; through the earlier ring's soak"}},
		},
		{
			name:  "emergency without skipSoak: the soak still holds",
			fleet: emergency(schema.Emergency{Update: "KB1", IgnoreWindows: true}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(recent)), ep("p1", "pilot", crit())},
			want:  []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, reason: "to soak 1d"}},
		},
		{
			name:  "emergency skipSoak does not skip a ring that has not passed",
			fleet: emergency(schema.Emergency{Update: "KB1", SkipSoak: true}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit()), ep("c2", "canary", crit()), ep("p1", "pilot", crit())},
			want:  []want{{ep: "p1", update: "KB1", d: plan.WaitingRing, reason: "ring pilot waits for ring canary: 0 of 2 installed"}},
		},
		{
			name:  "emergency with ignoreWindows: a job outside the window, until the window opens",
			fleet: emergency(schema.Emergency{Update: "KB1", IgnoreWindows: true}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit(long)), ep("b1", "", crit(), kb("KB2", "critical"))},
			want: []want{
				{ep: "b1", update: "KB1", d: plan.Missing, rule: rule(60), reason: "through the closed window"},
				{ep: "b1", update: "KB2", d: plan.WaitingWindow, rule: rule(6)},
			},
		},
		{
			name:  "emergency never goes through an exclusion",
			fleet: both(emergency(schema.Emergency{Update: "KB1", SkipSoak: true, IgnoreWindows: true, IgnoreFreezes: true}), excludeOnCanary),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit())},
			want:  []want{{ep: "c1", update: "KB1", d: plan.Excluded, rule: rule(45)}},
		},
		{
			name:  "emergency never goes through a halt",
			fleet: emergency(schema.Emergency{Update: "KB1", SkipSoak: true, IgnoreWindows: true, IgnoreFreezes: true}),
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(failedAt(now.Add(-hours(3))))), ep("c2", "canary", crit(long)), ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.Halted, reason: "halted in ring canary"}},
		},
		{
			name:  "emergency without ignoreFreezes stops at a freeze",
			fleet: both(emergency(schema.Emergency{Update: "KB1", IgnoreWindows: true}), freezeAll),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit())},
			want:  []want{{ep: "c1", update: "KB1", d: plan.WaitingWindow, rule: rule(50)}},
		},
		{
			name:  "emergency with ignoreFreezes goes through a freeze",
			fleet: both(emergency(schema.Emergency{Update: "KB1", IgnoreFreezes: true}), freezeAll),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit()), ep("c2", "canary", kb("KB2", "critical"))},
			want: []want{
				{ep: "c1", update: "KB1", d: plan.Missing, rule: rule(60), reason: "through a change freeze"},
				{ep: "c2", update: "KB2", d: plan.WaitingWindow, rule: rule(50)},
			},
		},
		{
			name:  "an expired emergency lets nothing through",
			fleet: emergency(schema.Emergency{Update: "KB1", IgnoreWindows: true, Until: now.Add(-time.Hour)}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit(long)), ep("b1", "", crit())},
			want:  []want{{ep: "b1", update: "KB1", d: plan.WaitingWindow, rule: rule(6)}},
		},
		{
			name: "deferred by a guard: no failure, waits for the window to open again",
			eps: []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit(long)),
				ep("b1", "", crit(result(yesterday23, protocol.ResultDeferredByGuard, "ehr.exe kept running for 30m")))},
			now:  time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC).Add(-hours(2)),
			want: []want{{ep: "b1", update: "KB1", d: plan.WaitingWindow, reason: "deferred by a guard at 2026-11-11 23:00 UTC: ehr.exe kept running for 30m; not a failure"}},
		},
		{
			name: "deferred by a guard: retried when the window opens, not as a failure",
			eps: []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit(long)),
				ep("b1", "", crit(result(yesterday23, protocol.ResultDeferredByGuard, "ehr.exe kept running for 30m")))},
			now:  time.Date(2026, 11, 12, 22, 30, 0, 0, time.UTC),
			want: []want{{ep: "b1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "a failed pre script is a failure of its own kind",
			eps: []*protocol.Endpoint{ep("c1", "canary", crit(long)), ep("p1", "pilot", crit(long)),
				ep("b1", "", crit(result(yesterday23, protocol.ResultHookFailed, "pre script scripts/stop-ehr.ps1 exited 1")))},
			now:  time.Date(2026, 11, 12, 21, 0, 0, 0, time.UTC),
			want: []want{{ep: "b1", update: "KB1", d: plan.Failed, reason: "pre script failed at 2026-11-11T23:00:00Z: pre script scripts/stop-ehr.ps1 exited 1"}},
		},
		{
			name: "failed pre scripts halt a ring like failed installs",
			eps: []*protocol.Endpoint{
				ep("c1", "canary", crit(result(now.Add(-hours(2)), protocol.ResultHookFailed, "exit 1"))), ep("c2", "canary", crit(long)),
				ep("p1", "pilot", crit()),
			},
			want: []want{{ep: "p1", update: "KB1", d: plan.Halted, reason: "halted in ring canary: 1 of 2 endpoints failed"}},
		},
		{
			name:  "rollback starts in the canary; the pilot waits for it",
			fleet: rollbackOf("KB9", schema.Selector{}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long)), ep("p1", "pilot", kb("KB9", "critical", long))},
			want: []want{
				{ep: "c1", update: "KB9", d: plan.Rollback, rule: rule(70), reason: "rollback: breaks label printing (PSA-1410)"},
				{ep: "p1", update: "KB9", d: plan.WaitingRing, reason: "ring pilot waits for ring canary: 0 of 1 rolled back, needs 50%"},
			},
		},
		{
			name:  "rolled back in the canary: held there, the pilot soaks",
			fleet: rollbackOf("KB9", schema.Selector{}),
			eps: []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long, rolledBack(now.Add(-hours(2)), protocol.ResultSucceeded))),
				ep("p1", "pilot", kb("KB9", "critical", long))},
			want: []want{
				{ep: "c1", update: "KB9", d: plan.Excluded, rule: rule(70), reason: "rolled back: breaks label printing (PSA-1410); not installed again while the rollback entry stands"},
				{ep: "p1", update: "KB9", d: plan.WaitingRing, reason: "ring pilot waits for ring canary to soak 1d"},
			},
		},
		{
			name:  "after the canary's soak the pilot rolls back, broad waits for the pilot",
			fleet: rollbackOf("KB9", schema.Selector{}),
			eps: []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long, rolledBack(now.Add(-hours(30)), protocol.ResultSucceeded))),
				ep("p1", "pilot", kb("KB9", "critical", long)), ep("b1", "", kb("KB9", "critical", long))},
			want: []want{
				{ep: "p1", update: "KB9", d: plan.Rollback},
				{ep: "b1", update: "KB9", d: plan.WaitingRing, reason: "ring broad waits for ring pilot: 0 of 1 rolled back"},
			},
		},
		{
			name:  "a failed rollback in the canary halts the rollback",
			fleet: rollbackOf("KB9", schema.Selector{}),
			eps: []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long, rolledBack(now.Add(-hours(2)), protocol.ResultFailed))),
				ep("c2", "canary", kb("KB9", "critical", long)), ep("p1", "pilot", kb("KB9", "critical", long))},
			want: []want{
				{ep: "c1", update: "KB9", d: plan.Failed, reason: "rollback failed at"},
				{ep: "p1", update: "KB9", d: plan.Halted, reason: "halted in ring canary: 1 of 2 endpoints failed"},
			},
		},
		{
			name:  "a rollback selects its endpoints; the others keep the update",
			fleet: rollbackOf("KB9", schema.Selector{Labels: map[string]string{"ring": "pilot"}}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long)), ep("p1", "pilot", kb("KB9", "critical", long))},
			want: []want{
				{ep: "c1", update: "KB9", d: plan.Installed},
				{ep: "p1", update: "KB9", d: plan.Rollback},
			},
		},
		{
			name:  "minEndpoints holds a rollback behind a canary it selects with nobody who had the update",
			fleet: both(minEndpoints(1, 1), rollbackOf("KB9", schema.Selector{})),
			eps:   []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical")), ep("p1", "pilot", kb("KB9", "critical", long))},
			want:  []want{{ep: "p1", update: "KB9", d: plan.WaitingRing, reason: "ring pilot waits: ring canary has 0 of 1 required reporting endpoints"}},
		},
		{
			name:  "a rollback for the pilot alone is not held by a canary it does not select",
			fleet: both(minEndpoints(1, 1), rollbackOf("KB9", schema.Selector{Labels: map[string]string{"ring": "pilot"}})),
			eps:   []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long)), ep("p1", "pilot", kb("KB9", "critical", long))},
			want:  []want{{ep: "c1", update: "KB9", d: plan.Installed}, {ep: "p1", update: "KB9", d: plan.Rollback}},
		},
		{
			name:  "an endpoint gets a rollback job and an install job apart",
			fleet: rollbackOf("KB9", schema.Selector{}),
			eps:   []*protocol.Endpoint{ep("c1", "canary", kb("KB9", "critical", long), kb("KB1", "critical"))},
			want: []want{
				{ep: "c1", update: "KB9", d: plan.Rollback},
				{ep: "c1", update: "KB1", d: plan.Missing},
			},
		},
	}
	var out strings.Builder
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFleet()
			if tc.fleet != nil {
				tc.fleet(f)
			}
			at := tc.now
			if at.IsZero() {
				at = now
			}
			res, err := plan.Plan(f, snapshot(tc.eps...), at, plan.Options{Decisions: true})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			checkWants(t, res, tc.want)
			fmt.Fprintf(&out, "== %s (now %s)\n", tc.name, at.Format(time.RFC3339))
			for _, d := range res.Decisions {
				fmt.Fprintf(&out, "%s/%s [%s] %s %s: %s\n", d.Endpoint, d.Update, d.Ring, d.Decision, orDash(d.Rule), d.Reason)
			}
			for _, j := range res.Jobs {
				fmt.Fprintf(&out, "job %s %s: %s not after %s", j.Endpoint, j.Ring, strings.Join(j.Updates, " "), j.NotAfter.Format(time.RFC3339))
				if j.Action != "" {
					fmt.Fprintf(&out, " action %s", j.Action)
				}
				if j.Emergency != "" {
					fmt.Fprintf(&out, " emergency %q", j.Emergency)
				}
				out.WriteString("\n")
			}
		})
	}
	if !t.Failed() {
		golden.Check(t, "testdata/policy19.golden.txt", []byte(out.String()))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// checkWants checks the decisions of res against wants, as runPlanCases
// does.
func checkWants(t *testing.T, res *plan.Result, wants []want) {
	t.Helper()
	got := map[string]plan.PairDecision{}
	for _, d := range res.Decisions {
		got[d.Endpoint+"/"+d.Update] = d
	}
	for _, w := range wants {
		d, ok := got[w.ep+"/"+w.update]
		switch {
		case !ok:
			t.Errorf("%s/%s: no decision", w.ep, w.update)
			continue
		case d.Decision != w.d:
			t.Errorf("%s/%s: decision %q (%s), want %q", w.ep, w.update, d.Decision, d.Reason, w.d)
		}
		if w.rule != "" && d.Rule != w.rule {
			t.Errorf("%s/%s: rule %q, want %q", w.ep, w.update, d.Rule, w.rule)
		}
		if w.reason != "" && !strings.Contains(d.Reason, w.reason) {
			t.Errorf("%s/%s: reason %q, want it to contain %q", w.ep, w.update, d.Reason, w.reason)
		}
	}
}

// TestExplainRebootAcrossDST: why shows an endpoint's reboot state in the
// client's time zone, each time with the offset of its own date, here on
// either side of the end of daylight saving time in New York (1 November
// 2026, 02:00 EDT becomes 01:00 EST), with the deferrals the ring allows.
func TestExplainRebootAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		state *protocol.RebootState
		mode  schema.RebootPolicy
		want  string
	}{
		{
			name: "prompt: pending before the change, scheduled after it",
			state: &protocol.RebootState{Mode: protocol.RebootPrompt, PendingSince: time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC),
				DeferralsUsed: 1, ScheduledAt: time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC)},
			mode: schema.RebootPrompt,
			want: "reboot pending since 2026-10-31 22:00 EDT, 1 of 3 deferrals used, scheduled at 2026-11-01 09:00 EST local",
		},
		{
			name:  "force: scheduled at the deadline, no deferrals",
			state: &protocol.RebootState{Mode: protocol.RebootForce, PendingSince: time.Date(2026, 10, 31, 20, 0, 0, 0, time.UTC), ScheduledAt: time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)},
			mode:  schema.RebootForce,
			want:  "reboot pending since 2026-10-31 16:00 EDT, scheduled at 2026-11-01 01:30 EST local",
		},
		{
			name: "an agent that predates reboot states says only that one is pending",
			mode: schema.RebootIfRequired,
			want: "reboot pending",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFleet()
			c := acme(f)
			c.Timezone, c.Location = "America/New_York", ny
			c.Rings[0].Reboot, c.Rings[0].RebootDeadline = tc.mode, 24*time.Hour
			c.Rings[0].RebootOptions = schema.RebootOptions{Deferrals: 3, DeferFor: 4 * time.Hour}
			e := ep("c1", "canary", kb("KB1", "critical", installed))
			e.LastSeen, e.RebootPending, e.Reboot = at.Add(-time.Hour), true, tc.state
			x, err := plan.Explain(f, snapshot(e), at, "c1", "KB1")
			if err != nil {
				t.Fatal(err)
			}
			if x.Reboot == nil {
				t.Fatal("no reboot in the explanation")
			}
			if x.Reboot.Detail != tc.want || x.Reboot.Rule != rule(10) || x.Reboot.Name != string(tc.mode) {
				t.Errorf("reboot = %q (%s, %s), want %q (%s, %s)", x.Reboot.Detail, x.Reboot.Name, x.Reboot.Rule, tc.want, tc.mode, rule(10))
			}
		})
	}
}

// TestExplainRollback: why cites the rollback entry and shows the
// rollback's own progress through the rings.
func TestExplainRollback(t *testing.T) {
	f := testFleet()
	rollbackOf("KB9", schema.Selector{})(f)
	long := installedAt(now.Add(-hours(24 * 9)))
	snap := snapshot(ep("c1", "canary", kb("KB9", "critical", long)), ep("p1", "pilot", kb("KB9", "critical", long)))
	x, err := plan.Explain(f, snap, now, "p1", "KB9")
	if err != nil {
		t.Fatal(err)
	}
	if x.Rollback == nil || x.Rollback.Rule != rule(70) || x.Rollback.Detail != "rollback: breaks label printing (PSA-1410)" {
		t.Errorf("rollback citation = %+v", x.Rollback)
	}
	var got []string
	for _, r := range x.Rollouts {
		got = append(got, r.Update+" "+r.Ring+" "+string(r.State))
	}
	want := []string{"rollback:KB9 canary in-progress", "rollback:KB9 pilot waiting", "rollback:KB9 broad waiting"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("rollouts = %q, want %q", got, want)
	}
	if x.Decision.Decision != plan.WaitingRing {
		t.Errorf("decision = %s (%s), want waiting-ring", x.Decision.Decision, x.Decision.Reason)
	}
}
