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
	// severity, when set, is the decision's severity.
	severity string
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
				if w.severity != "" && d.Severity != w.severity {
					t.Errorf("%s/%s: severity %q, want %q", w.ep, w.update, d.Severity, w.severity)
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
			name: "requirement no available version meets: unavailable on the installed package, with what is installed and available",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				pkg("openssl", "3.0.14-1", installed), pkg("openssl", "3.0.14-2"), pkg("curl", "7.88", installed))},
			want: []want{
				{ep: "ws1", update: "openssl@3.0.14-1", d: plan.Unavailable, rule: rule(41),
					reason: "required apt:openssl >= 3.0.15; installed openssl 3.0.14-1; available: 3.0.14-2, below it too"},
				{ep: "ws1", update: "openssl@3.0.14-2", d: plan.NotApproved},
				{ep: "ws1", update: "curl@7.88", d: plan.NotApproved},
			},
			jobs: []string{},
		},
		{
			name: "requirement with nothing newer to install at all: unavailable",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", pkg("openssl", "3.0.11-1", installed))},
			want: []want{{ep: "ws1", update: "openssl@3.0.11-1", d: plan.Unavailable, reason: "no newer version is available to the endpoint"}},
		},
		{
			name: "requirement an available candidate meets: the installed package is not unavailable",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", pkg("openssl", "3.0.14-1", installed), pkg("openssl", "3.0.15-1~deb12u1"))},
			want: []want{
				{ep: "ws1", update: "openssl@3.0.14-1", d: plan.NotApproved},
				{ep: "ws1", update: "openssl@3.0.15-1~deb12u1", d: plan.Missing},
			},
		},
		{
			name: "update with no release time in an offline snapshot counts as released now: minAge runs from now",
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "important", released(time.Time{})))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.NotApproved, rule: rule(31), eligible: now.Add(7 * 24 * time.Hour)}},
			jobs: []string{},
		},
		{
			name: "update with no release time is not released before any date",
			fleet: func(f *schema.Fleet) {
				acme(f).Baseline.Approve = []schema.ApproveRule{{Name: "old-ones", ReleasedBefore: now.Add(-time.Hour), Pos: pos(33)}}
			},
			eps:  []*protocol.Endpoint{ep("ws1", "canary", kb("KB1", "low", released(time.Time{})), kb("KB2", "low"))},
			want: []want{{ep: "ws1", update: "KB1", d: plan.NotApproved}, {ep: "ws1", update: "KB2", d: plan.Missing, rule: rule(33)}},
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
