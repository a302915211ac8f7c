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

// want is the expected decision of one pair. Empty rule, reason and ring
// are not checked; eligible is checked when set, and noEligible checks that
// none is given.
type want struct {
	ep, update string
	d          plan.Decision
	rule       string
	reason     string
	ring       string
	eligible   time.Time
	noEligible bool
}

type planCase struct {
	name  string
	fleet func(f *schema.Fleet)
	now   time.Time
	eps   []*protocol.Endpoint
	want  []want
	// jobs, when not nil, lists every job as "endpoint ring: updates".
	jobs []string
	// err, when set, is a substring of the expected planning error.
	err string
}

func runPlanCases(t *testing.T, cases []planCase) {
	t.Helper()
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
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Plan error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			got := map[string]plan.PairDecision{}
			for _, d := range res.Decisions {
				got[d.Endpoint+"/"+d.Update] = d
			}
			for _, w := range tc.want {
				d, ok := got[w.ep+"/"+w.update]
				if !ok {
					t.Errorf("%s/%s: no decision", w.ep, w.update)
					continue
				}
				if d.Decision != w.d {
					t.Errorf("%s/%s: decision %q (%s), want %q", w.ep, w.update, d.Decision, d.Reason, w.d)
				}
				if w.rule != "" && d.Rule != w.rule {
					t.Errorf("%s/%s: rule %q, want %q", w.ep, w.update, d.Rule, w.rule)
				}
				if w.reason != "" && !strings.Contains(d.Reason, w.reason) {
					t.Errorf("%s/%s: reason %q, want it to contain %q", w.ep, w.update, d.Reason, w.reason)
				}
				if w.ring != "" && d.Ring != w.ring {
					t.Errorf("%s/%s: ring %q, want %q", w.ep, w.update, d.Ring, w.ring)
				}
				if !w.eligible.IsZero() && (d.EligibleAt == nil || !d.EligibleAt.Equal(w.eligible)) {
					t.Errorf("%s/%s: eligibleAt %v, want %v", w.ep, w.update, d.EligibleAt, w.eligible)
				}
				if w.noEligible && d.EligibleAt != nil {
					t.Errorf("%s/%s: eligibleAt %v, want none", w.ep, w.update, d.EligibleAt)
				}
			}
			if tc.jobs != nil {
				gotJobs := []string{}
				for _, j := range res.Jobs {
					gotJobs = append(gotJobs, j.Endpoint+" "+j.Ring+": "+strings.Join(j.Updates, " "))
				}
				if diff := cmp.Diff(tc.jobs, gotJobs); diff != "" {
					t.Errorf("jobs (-want +got):\n%s", diff)
				}
			}
			total := 0
			for _, d := range plan.AllDecisions {
				n, ok := res.Summary[d]
				if !ok {
					t.Errorf("summary lacks %q", d)
				}
				total += n
			}
			if total != len(res.Decisions) {
				t.Errorf("summary counts %d pairs, decisions hold %d", total, len(res.Decisions))
			}
		})
	}
}

func TestMembershipAndDesire(t *testing.T) {
	yes := true
	runPlanCases(t, []planCase{
		{
			name: "endpoint belongs to the first ring whose select matches",
			fleet: func(f *schema.Fleet) {
				// pilot also selects by hostname; canary comes first.
				acme(f).Rings[1].Select.Hostnames = []string{"WS1"}
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing, ring: "canary", rule: rule(30)}},
			jobs: []string{"ws1 canary: KB1"},
		},
		{
			name: "hostnames select case-insensitively, os family and endpoint ids too",
			fleet: func(f *schema.Fleet) {
				acme(f).Rings[0].Select = schema.Selector{Hostnames: []string{"WS1"}}
				acme(f).Rings[1].Select = schema.Selector{OS: []string{"linux"}, Endpoints: []string{"srv9", "ws2"}}
			},
			eps: []*protocol.Endpoint{ep("ws1", "", kb("KB1", "critical")), ep("ws2", "", kb("KB1", "critical"))},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.Missing, ring: "canary"},
				{ep: "ws2", update: "KB1", ring: "broad", d: plan.WaitingRing},
			},
		},
		{
			name: "no ring selects the endpoint: waiting-ring",
			fleet: func(f *schema.Fleet) {
				acme(f).Rings[2].Select = schema.Selector{Labels: map[string]string{"ring": "broad"}}
			},
			eps:  []*protocol.Endpoint{ep("ws1", "", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.WaitingRing, reason: "no ring selects this endpoint"}},
			jobs: []string{},
		},
		{
			name: "report for a client the repo does not have is unknown-client and gets no job",
			eps: []*protocol.Endpoint{func() *protocol.Endpoint {
				e := ep("ws1", "canary", kb("KB1", "critical"), kb("KB2", "low"))
				e.Client = "initech"
				return e
			}()},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.UnknownClient, reason: `client "initech" is not in the fleet repository`},
				{ep: "ws1", update: "KB2", d: plan.UnknownClient},
			},
			jobs: []string{},
		},
		{
			name: "installed and approved is installed",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical", installedAt(now.Add(-hours(3)))))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Installed, rule: rule(30)}},
			jobs: []string{},
		},
		{
			name: "installed but approved by nothing is not-approved",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "low", installed))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.NotApproved}},
		},
		{
			name: "nothing approves a low severity update: not-approved, not drift",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "low"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.NotApproved, reason: "no approve rule or requirement matches", noEligible: true}},
			jobs: []string{},
		},
		{
			name: "approve rule whose minAge has not passed: not-approved until then",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "important", released(now.Add(-hours(48)))))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.NotApproved, rule: rule(31),
				eligible: now.Add(-hours(48)).Add(7 * 24 * time.Hour), reason: "once it is 7d old"}},
			jobs: []string{},
		},
		{
			name: "approve rule whose minAge has passed approves",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "important"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing, rule: rule(31), reason: `approved by rule "important-after-a-week"`}},
		},
		{
			name: "the first matching approve rule is cited",
			fleet: func(f *schema.Fleet) {
				b := &acme(f).Baseline
				b.Approve = append([]schema.ApproveRule{{Name: "all-windows", Source: []string{"windows-update"}, Pos: pos(29)}}, b.Approve...)
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing, rule: rule(29)}},
		},
		{
			name: "a requirement is cited before an approve rule",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB100", "critical"))},
			want: []want{{ep: "ws1", update: "KB100", d: plan.Missing, rule: rule(40), reason: "required by the baseline: KB100"}},
		},
		{
			name: "a requirement by KB makes a low severity update desired",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB100", "low"))},
			want: []want{{ep: "ws1", update: "KB100", d: plan.Missing, rule: rule(40)}},
		},
		{
			name: "requirement by package and minimum version: candidate reaches the minimum",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", pkg("openssl", "3.0.15-1~deb12u1"), pkg("openssl", "3.0.14-2"), pkg("curl", "8.0"))},
			want: []want{
				// Debian ordering: 3.0.15-1~deb12u1 is after 3.0.15.
				{ep: "ws1", update: "openssl@3.0.15-1~deb12u1", d: plan.Missing, rule: rule(41), reason: "openssl >= 3.0.15"},
				{ep: "ws1", update: "openssl@3.0.14-2", d: plan.NotApproved},
				{ep: "ws1", update: "curl@8.0", d: plan.NotApproved},
			},
		},
		{
			name: "approve rule on CVSS, known-exploited, category, name glob and release date",
			fleet: func(f *schema.Fleet) {
				acme(f).Baseline.Approve = []schema.ApproveRule{{
					Name: "exploited-edge", Category: []string{"security"}, MinCVSS: 8, KnownExploited: &yes,
					Match: "Microsoft.Edge*", ReleasedBefore: now, Pos: pos(33),
				}}
			},
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("Microsoft.Edge@1", "low", func(u *protocol.Update) { u.Name, u.CVSS, u.KnownExploited = "Microsoft.Edge", 8.8, true }),
				kb("Microsoft.Edge@2", "low", func(u *protocol.Update) { u.Name, u.CVSS, u.KnownExploited = "Microsoft.Edge", 7.9, true }),
				kb("Microsoft.Edge@3", "low", func(u *protocol.Update) { u.Name, u.CVSS, u.KnownExploited = "Microsoft.Edge", 9.1, false }),
				kb("Microsoft.Edge@4", "low", func(u *protocol.Update) {
					u.Name, u.CVSS, u.KnownExploited, u.Category = "Microsoft.Edge", 9.1, true, "feature"
				}),
				kb("Microsoft.Edge@5", "low", func(u *protocol.Update) {
					u.Name, u.CVSS, u.KnownExploited, u.Released = "Microsoft.Edge", 9.1, true, now.Add(time.Minute)
				}),
				kb("Google.Chrome@1", "low", func(u *protocol.Update) { u.Name, u.CVSS, u.KnownExploited = "Google.Chrome", 9.8, true }),
			)},
			want: []want{
				{ep: "ws1", update: "Microsoft.Edge@1", d: plan.Missing, rule: rule(33)},
				{ep: "ws1", update: "Microsoft.Edge@2", d: plan.NotApproved},
				{ep: "ws1", update: "Microsoft.Edge@3", d: plan.NotApproved},
				{ep: "ws1", update: "Microsoft.Edge@4", d: plan.NotApproved},
				{ep: "ws1", update: "Microsoft.Edge@5", d: plan.NotApproved},
				{ep: "ws1", update: "Google.Chrome@1", d: plan.NotApproved},
			},
		},
		{
			name: "a bad match pattern is a planning error naming the rule",
			fleet: func(f *schema.Fleet) {
				acme(f).Baseline.Approve[0].Match = "[edge"
			},
			eps: []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			err: `client "acme": endpoint "ws1": update "KB1": approve rule "critical-now" at clients/acme/policy.cue:30:2: match "[edge"`,
		},
	})
}

func TestExclusionsFreezesWindows(t *testing.T) {
	excl := func(until time.Time, sel schema.Selector) func(f *schema.Fleet) {
		return func(f *schema.Fleet) {
			acme(f).Exclusions = []schema.Exclusion{{Update: "KB1", Select: sel, Reason: "breaks the EHR vendor app",
				Ticket: "PSA-1234", Until: until, Pos: pos(50)}}
		}
	}
	runPlanCases(t, []planCase{
		{
			name:  "exclusion holds the update with its reason, ticket and expiry",
			fleet: excl(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), schema.Selector{}),
			eps:   []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Excluded, rule: rule(50),
				reason: "exclusion: breaks the EHR vendor app (PSA-1234) through 2026-12-30"}},
			jobs: []string{},
		},
		{
			name: "exclusion by source and name glob",
			fleet: func(f *schema.Fleet) {
				acme(f).Exclusions = []schema.Exclusion{{Source: "apt", Match: "openssl*", Reason: "pinned", Until: now.Add(hours(1)), Pos: pos(51)}}
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", pkg("openssl", "3.0.16"))},
			want: []want{{ep: "ws1", update: "openssl@3.0.16", d: plan.Excluded, rule: rule(51)}},
		},
		{
			name:  "expired exclusion no longer applies",
			fleet: excl(now, schema.Selector{}),
			eps:   []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want:  []want{{ep: "ws1", update: "KB1", d: plan.Missing}},
		},
		{
			name:  "exclusion selecting other endpoints does not apply",
			fleet: excl(now.Add(hours(24)), schema.Selector{Labels: map[string]string{"role": "ehr"}}),
			eps: []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical")), func() *protocol.Endpoint {
				e := ep("ehr1", "canary", kb("KB1", "critical"))
				e.Labels["role"] = "ehr"
				return e
			}()},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing}, {ep: "ehr1", update: "KB1", d: plan.Excluded}},
		},
		{
			name: "change freeze: waiting-window naming the freeze until it ends",
			fleet: func(f *schema.Fleet) {
				acme(f).Freezes = []schema.Freeze{{From: now.Add(-hours(24)), Until: now.Add(hours(72)), Reason: "year-end close", Pos: pos(60)}}
			},
			eps: []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.WaitingWindow, rule: rule(60),
				reason: "change freeze until 2026-11-15T12:00:00Z: year-end close", eligible: now.Add(hours(72))}},
			jobs: []string{},
		},
		{
			name: "freeze that has not begun does not hold",
			fleet: func(f *schema.Fleet) {
				acme(f).Freezes = []schema.Freeze{{From: now.Add(hours(1)), Until: now.Add(hours(72)), Reason: "year-end close", Pos: pos(60)}}
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "window closed: waiting-window until the next opening",
			eps:  []*protocol.Endpoint{ep("ws1", "", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.WaitingWindow, rule: rule(6), ring: "broad",
				eligible: time.Date(2026, 11, 12, 22, 0, 0, 0, time.UTC), reason: `window "nightly" opens 2026-11-12T22:00:00Z`}},
			jobs: []string{},
		},
		{
			name: "window open across midnight: job ends with the occurrence",
			now:  time.Date(2026, 11, 13, 0, 30, 0, 0, time.UTC),
			eps:  []*protocol.Endpoint{ep("ws1", "", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing, ring: "broad"}},
			jobs: []string{"ws1 broad: KB1"},
		},
		{
			name: "client in report mode gets decisions but no job",
			fleet: func(f *schema.Fleet) {
				acme(f).Mode = schema.ModeReport
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.Missing}},
			jobs: []string{},
		},
		{
			name: "update in an open job is in-progress",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical", inFlight("job-7")), kb("KB2", "critical"))},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.InProgress, reason: "in job job-7"},
				{ep: "ws1", update: "KB2", d: plan.Missing},
			},
			jobs: []string{"ws1 canary: KB2"},
		},
		{
			name: "a ring naming an undefined window is a planning error",
			fleet: func(f *schema.Fleet) {
				acme(f).Rings[0].Window = "weekend"
			},
			eps: []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "critical"))},
			err: `client "acme": ring "canary": window "weekend" is not defined`,
		},
	})
}

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

func TestFailures(t *testing.T) {
	// Broad's nightly window is open 22:00-02:00 UTC; planning at 23:00.
	at := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	opened := time.Date(2026, 11, 12, 22, 0, 0, 0, time.UTC)
	crit := func(opts ...func(*protocol.Update)) *protocol.Update { return kb("KB1", "critical", opts...) }
	// Enough successes elsewhere in broad that one failure does not halt.
	others := func() []*protocol.Endpoint {
		var eps []*protocol.Endpoint
		for _, id := range []string{"b10", "b11", "b12", "b13", "b14", "b15", "b16", "b17", "b18", "b19", "b20", "b21", "b22", "b23", "b24", "b25", "b26", "b27", "b28", "b29"} {
			eps = append(eps, ep(id, "", crit(installedAt(now.Add(-hours(100))))))
		}
		return eps
	}
	runPlanCases(t, []planCase{
		{
			name: "failed in this window occurrence: failed until the window next opens",
			now:  at,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(30*time.Minute))))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Failed, rule: rule(6), eligible: opened.Add(hours(24)),
				reason: `failed at 2026-11-12T22:30:00Z: 0x800f0922; retried when window "nightly" next opens`}},
			jobs: []string{},
		},
		{
			name: "failed in an earlier window occurrence: retried in this one",
			now:  at,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(-hours(23)))))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Missing}},
			jobs: []string{"b1 broad: KB1"},
		},
		{
			name: "failed last night, window closed now: failed until tonight's opening",
			now:  now,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(-hours(23)))))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Failed, eligible: opened}},
		},
		{
			name: "three unforgiven failures: failed until a resume entry",
			now:  at,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(-hours(71)), opened.Add(-hours(47)), opened.Add(-hours(23)))))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Failed, rule: rule(20), noEligible: true,
				reason: "failed 3 times, last: 0x800f0922; a resume entry newer than the last attempt retries it"}},
			jobs: []string{},
		},
		{
			name: "a success after failures is what counts",
			now:  at,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(30*time.Minute)), attempt(opened.Add(40*time.Minute), protocol.ResultSucceeded)))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Missing}},
		},
		{
			name: "a refused attempt counts neither as success nor failure",
			now:  at,
			eps:  append(others(), ep("b1", "", crit(failedAt(opened.Add(30*time.Minute)), attempt(opened.Add(40*time.Minute), protocol.ResultRefused)))),
			want: []want{{ep: "b1", update: "KB1", d: plan.Failed}},
		},
	})
}

func TestJobs(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name: "updates in a job come after the updates they require",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB300", "critical", requires("KB400")), kb("KB400", "critical", requires("KB500")), kb("KB500", "critical"),
				kb("KB200", "critical"))},
			jobs: []string{"ws1 canary: KB200 KB500 KB400 KB300"},
		},
		{
			name: "requires on installed or absent updates are ignored",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB300", "critical", requires("KB100", "KB999")), kb("KB100", "critical", installed))},
			jobs: []string{"ws1 canary: KB300"},
		},
		{
			name: "an update nothing approves joins the job when a desired update requires it",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB5046617", "critical", requires("KB5046616")), kb("KB5046616", "moderate"), kb("KB5046999", "moderate"))},
			want: []want{
				{ep: "ws1", update: "KB5046616", d: plan.Missing, rule: "clients/acme/policy.cue:30", reason: `required by KB5046617 (approved by rule "critical-now")`},
				{ep: "ws1", update: "KB5046999", d: plan.NotApproved},
			},
			jobs: []string{"ws1 canary: KB5046616 KB5046617"},
		},
		{
			name: "an update waits for one it requires that an exclusion holds",
			fleet: func(f *schema.Fleet) {
				c := f.Clients["acme"]
				c.Exclusions = append(c.Exclusions, schema.Exclusion{Update: "KB5046616", Reason: "breaks the scanner driver", Until: now.Add(30 * 24 * time.Hour), Pos: pos(40)})
			},
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB5046617", "critical", requires("KB5046616")), kb("KB5046616", "critical"), kb("KB5046800", "critical"))},
			want: []want{
				{ep: "ws1", update: "KB5046616", d: plan.Excluded},
				{ep: "ws1", update: "KB5046617", d: plan.WaitingRing, reason: "waits for KB5046616, which it requires (excluded)"},
			},
			jobs: []string{"ws1 canary: KB5046800"},
		},
		{
			name: "a requires cycle is a planning error naming it",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "critical", requires("KB2")), kb("KB2", "critical", requires("KB1")), kb("KB0", "critical"))},
			err: `endpoint "ws1": requires cycle: KB1 -> KB2 -> KB1`,
		},
		{
			name: "jobs are sorted by client, ring order and endpoint",
			eps: []*protocol.Endpoint{
				// Nobody in canary has KB2, so pilot may start on it at once.
				ep("a9", "canary", kb("KB1", "critical")), ep("a1", "pilot", kb("KB2", "critical")), ep("a5", "canary", kb("KB1", "critical")),
			},
			jobs: []string{"a5 canary: KB1", "a9 canary: KB1", "a1 pilot: KB2"},
		},
	})
}

func TestJobFields(t *testing.T) {
	at := time.Date(2026, 11, 13, 1, 0, 0, 0, time.UTC)
	snap := snapshot(ep("ws1", "", kb("KB1", "critical"), kb("KB2", "critical")))
	res, err := plan.Plan(testFleet(), snap, at, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("jobs = %+v, want one", res.Jobs)
	}
	j := res.Jobs[0]
	want := plan.Job{Endpoint: "ws1", Client: "acme", Ring: "broad", Updates: []string{"KB1", "KB2"},
		NotAfter: time.Date(2026, 11, 13, 2, 0, 0, 0, time.UTC), Reboot: schema.RebootForce, RebootDeadline: "4h0m0s",
		Revision: "c0ffee", IdempotencyKey: j.IdempotencyKey}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
	if len(j.IdempotencyKey) != 64 {
		t.Errorf("idempotency key %q is not hex SHA-256", j.IdempotencyKey)
	}
	again, err := plan.Plan(testFleet(), snap, at.Add(time.Minute), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Jobs[0].IdempotencyKey != j.IdempotencyKey {
		t.Errorf("same endpoint, updates and revision gave a different key")
	}
	f := testFleet()
	f.Revision = "decaf"
	other, err := plan.Plan(f, snap, at, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Jobs[0].IdempotencyKey == j.IdempotencyKey {
		t.Errorf("another revision gave the same key")
	}
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
