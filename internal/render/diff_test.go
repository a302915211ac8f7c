package render

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// modePlan is a plan at one revision in which acme is in mode with the
// given number of jobs, and globex, enforced, has one.
func modePlan(rev string, mode schema.Mode, acmeJobs int) *plan.Result {
	now := time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)
	res := &plan.Result{Revision: rev, Now: now, Summary: map[plan.Decision]int{plan.Missing: 4}, Jobs: []plan.Job{},
		Modes: []plan.ClientMode{{Client: "acme", Mode: mode, Rule: "clients/acme/policy.cue:4"}, {Client: "globex", Mode: schema.ModeEnforce}}}
	for i := range acmeJobs {
		res.Jobs = append(res.Jobs, plan.Job{Endpoint: "acme-ws-00" + string(rune('1'+i)), Client: "acme", Ring: "canary", Updates: []string{"KB1"}, NotAfter: now.Add(time.Hour)})
	}
	res.Jobs = append(res.Jobs, plan.Job{Endpoint: "globex-web01", Client: "globex", Ring: "all", Updates: []string{"KB1"}, NotAfter: now.Add(time.Hour)})
	return res
}

// TestModeChangeShowsInThePlanDiff: switching a client between report and
// enforce changes no decision, only whether its jobs go out; the plan of
// the change says so, with the jobs it starts or stops sending.
func TestModeChangeShowsInThePlanDiff(t *testing.T) {
	tests := []struct {
		name       string
		base, head *plan.Result
		want       []ModeChange
		text, md   string
	}{
		{
			name: "report to enforce",
			base: modePlan("aaaa", schema.ModeReport, 0), head: modePlan("bbbb", schema.ModeEnforce, 3),
			want: []ModeChange{{Client: "acme", From: schema.ModeReport, To: schema.ModeEnforce, Rule: "clients/acme/policy.cue:4", Jobs: 3}},
			text: "  acme: mode report → enforce: 3 jobs would now be sent (clients/acme/policy.cue:4)\n",
			md:   "Mode change: acme: mode report → enforce: 3 jobs would now be sent (clients/acme/policy.cue:4).\n",
		},
		{
			name: "enforce to report",
			base: modePlan("aaaa", schema.ModeEnforce, 1), head: modePlan("bbbb", schema.ModeReport, 0),
			want: []ModeChange{{Client: "acme", From: schema.ModeEnforce, To: schema.ModeReport, Rule: "clients/acme/policy.cue:4", Jobs: 1}},
			text: "  acme: mode enforce → report: 1 job would no longer be sent (clients/acme/policy.cue:4)\n",
			md:   "Mode change: acme: mode enforce → report: 1 job would no longer be sent",
		},
		{
			name: "to enforce with nothing due",
			base: modePlan("aaaa", schema.ModeReport, 0), head: modePlan("bbbb", schema.ModeEnforce, 0),
			want: []ModeChange{{Client: "acme", From: schema.ModeReport, To: schema.ModeEnforce, Rule: "clients/acme/policy.cue:4"}},
			text: "  acme: mode report → enforce: no job is due now (clients/acme/policy.cue:4)\n",
			md:   "Mode change: acme: mode report → enforce: no job is due now",
		},
		{
			name: "same mode",
			base: modePlan("aaaa", schema.ModeEnforce, 1), head: modePlan("bbbb", schema.ModeEnforce, 1),
			want: []ModeChange{},
			md:   "this change does not change any decision or job",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Diff(tt.base, tt.head)
			if diff := cmp.Diff(tt.want, c.ModeChanges); diff != "" {
				t.Errorf("mode changes (-want +got):\n%s", diff)
			}
			var text, md strings.Builder
			if err := WriteChange(&text, Text, c); err != nil {
				t.Fatal(err)
			}
			if err := WriteChange(&md, Markdown, c); err != nil {
				t.Fatal(err)
			}
			if tt.text != "" && !strings.Contains(text.String(), tt.text) {
				t.Errorf("text output lacks %q:\n%s", tt.text, text.String())
			}
			if tt.text == "" && strings.Contains(text.String(), "mode ") {
				t.Errorf("text output names a mode change:\n%s", text.String())
			}
			if !strings.Contains(md.String(), tt.md) {
				t.Errorf("Markdown output lacks %q:\n%s", tt.md, md.String())
			}
		})
	}
}

// TestPlanNamesClientsInReportMode: a plan says which clients get no job
// because of their mode.
func TestPlanNamesClientsInReportMode(t *testing.T) {
	for _, tt := range []struct {
		mode schema.Mode
		want string
	}{
		{schema.ModeReport, "In report mode (decided, but no job is sent): acme (clients/acme/policy.cue:4)"},
		{schema.ModeEnforce, ""},
	} {
		for _, f := range []Format{Text, Markdown} {
			var b strings.Builder
			if err := Plan(&b, f, modePlan("aaaa", tt.mode, 0), false); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(b.String(), "report mode"); got != (tt.want != "") || !strings.Contains(b.String(), tt.want) {
				t.Errorf("%s plan of acme in %s mode, want %q:\n%s", f, tt.mode, tt.want, b.String())
			}
		}
	}
}

// TestWhyResumedInReportMode renders the explanation of an update a
// resume entry lets go in a client in report mode; read
// testdata/why-resumed.txt.
func TestWhyResumedInReportMode(t *testing.T) {
	now := time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)
	after := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	closes := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	x := &plan.Explanation{
		Endpoint: "acme-ws-002", Client: "acme", Update: "KB5034441", Revision: "4f2a9c1e0b7d3a5f8e6c2b1a0d9f8e7c6b5a4d3e", Now: now, KnownClient: true,
		Ring:    &plan.Citation{Kind: "ring", Name: "pilot", Rule: "clients/acme/policy.cue:9", Detail: "ring 2 of 3, the first whose select matches"},
		Desire:  &plan.Citation{Kind: "require", Name: "KB5034441", Rule: "clients/acme/policy.cue:20", Detail: "required by the baseline: KB5034441"},
		Desired: true,
		Resume: &plan.Citation{Kind: "resume", Name: "KB5034441", Rule: "clients/acme/policy.cue:31", At: &after,
			Detail: "failures before 2026-11-23 06:00 CST are forgiven; without it, failures would halt the rollout in this ring"},
		Mode:   &plan.Citation{Kind: "mode", Name: "report", Rule: "clients/acme/policy.cue:4", Detail: "every decision is made, no job is sent"},
		Window: &plan.WindowState{Name: "weeknights", Rule: "fleet.cue:23", Open: true, Closes: &closes},
		Decision: plan.PairDecision{Endpoint: "acme-ws-002", Client: "acme", Ring: "pilot", Update: "KB5034441", Source: "windows-update",
			Decision: plan.Missing, Rule: "clients/acme/policy.cue:4",
			Reason: `mode "report": decided, but no job is sent; resumed: failures before 2026-11-23 06:00 CST are forgiven; required by the baseline: KB5034441`},
	}
	var b strings.Builder
	if err := Why(&b, x, nil); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "why-resumed.txt"), []byte(b.String()))
}
