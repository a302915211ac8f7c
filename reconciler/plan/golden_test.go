package plan_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// goldenNow is 22:00 in New York on a Wednesday: acme's evening window is
// open, globex's Berlin night window is closed.
var goldenNow = time.Date(2026, 11, 12, 3, 0, 0, 0, time.UTC)

// goldenFleet is a small but realistic fleet: acme in New York with three
// rings and an exclusion, globex in Berlin on apt with a patch-Tuesday
// window. The snapshot also reports a client (initech) the fleet lacks.
func goldenFleet(t *testing.T) *schema.Fleet {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(client string, line int) schema.Pos {
		return schema.Pos{File: "clients/" + client + "/policy.cue", Line: line, Col: 2}
	}
	a := func(line int) schema.Pos { return at("acme", line) }
	g := func(line int) schema.Pos { return at("globex", line) }
	return &schema.Fleet{Revision: "4f2a9c1e0b7d3a5f8e6c2b1a0d9f8e7c6b5a4d3e", Clients: map[string]*schema.Client{
		"acme": {
			ID: "acme", Name: "Acme Dental", Timezone: "America/New_York", Location: ny, Dir: "clients/acme", Mode: schema.ModeEnforce,
			Windows: map[string]schema.Window{
				"evenings": {Name: "evenings", Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: 20 * 60, Duration: 5 * time.Hour, Pos: a(4)},
			},
			Rings: []schema.Ring{
				{Name: "canary", Select: schema.Selector{Labels: map[string]string{"ring": "canary"}}, Window: "evenings",
					Soak: 24 * time.Hour, MinSuccess: 1, MaxFailures: 0.5, Reboot: schema.RebootIfRequired, Pos: a(10)},
				{Name: "pilot", Select: schema.Selector{Labels: map[string]string{"ring": "pilot"}}, Window: "evenings",
					Soak: 48 * time.Hour, MinSuccess: 0.9, MaxFailures: 0.1, MaxConcurrent: 25, Reboot: schema.RebootIfRequired, Pos: a(16)},
				{Name: "broad", Window: "evenings", MinSuccess: 0.95, MaxFailures: 0.05, Reboot: schema.RebootForce,
					RebootDeadline: 8 * time.Hour, Pos: a(22)},
			},
			Baseline: schema.Baseline{Approve: []schema.ApproveRule{
				{Name: "windows-security", Source: []string{"windows-update"}, Category: []string{"security", "critical"}, Pos: a(30)},
				{Name: "apps-important", Source: []string{"winget"}, MinSeverity: "important", MinAge: 3 * 24 * time.Hour, Pos: a(31)},
			}},
			Exclusions: []schema.Exclusion{{Update: "KB5044281", Select: schema.Selector{Labels: map[string]string{"role": "ehr"}},
				Reason: "breaks the EHR vendor app", Ticket: "PSA-1234", Until: time.Date(2026, 12, 31, 5, 0, 0, 0, time.UTC), Pos: a(40)}},
			StaleAfter: 7 * 24 * time.Hour,
		},
		"globex": {
			ID: "globex", Name: "Globex", Timezone: "Europe/Berlin", Location: berlin, Dir: "clients/globex", Mode: schema.ModeEnforce,
			Windows: map[string]schema.Window{
				"patch-friday": {Name: "patch-friday", Monthly: &schema.Monthly{Weekday: "tue", Week: 2, OffsetDays: 3}, Start: 22 * 60, Duration: 6 * time.Hour, Pos: g(4)},
			},
			Rings: []schema.Ring{{Name: "all", Window: "patch-friday", MinSuccess: 1, MaxFailures: 0.2, Reboot: schema.RebootIfRequired, Pos: g(8)}},
			Baseline: schema.Baseline{Require: []schema.Requirement{
				{Source: "apt", Match: "openssl", MinVersion: "3.0.15", Pos: g(14)},
				{Source: "apt", Match: "libssl*", MinVersion: "3.0.15", Pos: g(15)},
			}},
			StaleAfter: 7 * 24 * time.Hour,
		},
	}}
}

func readSnapshot(t *testing.T) *protocol.Snapshot {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := protocol.DecodeSnapshot(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPlanGolden plans the realistic fixture; read testdata/plan.golden.json
// to see every decision, job and rollout.
func TestPlanGolden(t *testing.T) {
	res, err := plan.Plan(goldenFleet(t), readSnapshot(t), goldenNow, plan.Options{Decisions: true})
	if err != nil {
		t.Fatal(err)
	}
	golden.CheckJSON(t, filepath.Join("testdata", "plan.golden.json"), res)
}

// TestExplainGolden explains the pilot endpoint waiting for the canary.
func TestExplainGolden(t *testing.T) {
	fleet, snap := goldenFleet(t), readSnapshot(t)
	x, err := plan.Explain(fleet, snap, goldenNow, "ep-acme-ws17", "KB5044281")
	if err != nil {
		t.Fatal(err)
	}
	golden.CheckJSON(t, filepath.Join("testdata", "explain.golden.json"), x)

	// Explain and Plan agree on every pair.
	res, err := plan.Plan(fleet, snap, goldenNow, plan.Options{Decisions: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Decisions {
		x, err := plan.Explain(fleet, snap, goldenNow, d.Endpoint, d.Update)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(d, x.Decision); diff != "" {
			t.Errorf("Explain(%s, %s) disagrees with Plan (-plan +explain):\n%s", d.Endpoint, d.Update, diff)
		}
	}
}

func TestExplainErrors(t *testing.T) {
	fleet, snap := goldenFleet(t), readSnapshot(t)
	tests := []struct{ name, ep, update, want string }{
		{"endpoint not in the snapshot", "ep-nope", "KB1", `explain: endpoint "ep-nope" is not in the state snapshot`},
		{"update not reported by the endpoint", "ep-acme-ws17", "KB1", `explain: endpoint "ep-acme-ws17" does not report update "KB1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := plan.Explain(fleet, snap, goldenNow, tt.ep, tt.update)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Explain error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPlanIgnoresEndpointOrder plans a generated fleet twice, the second
// time with the endpoints shuffled, and wants the same JSON.
func TestPlanIgnoresEndpointOrder(t *testing.T) {
	at := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	fleet := plangen.Fleet(20)
	snap := plangen.Snapshot(20, 2000, 12, at)
	first, err := plan.Plan(fleet, snap, at, plan.Options{Decisions: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	rng.Shuffle(len(snap.Endpoints), func(i, j int) { snap.Endpoints[i], snap.Endpoints[j] = snap.Endpoints[j], snap.Endpoints[i] })
	second, err := plan.Plan(fleet, snap, at, plan.Options{Decisions: true})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(second)
	if !bytes.Equal(a, b) {
		t.Errorf("shuffling the endpoints changed the plan")
	}
	if len(first.Jobs) == 0 || len(first.Rollouts) == 0 {
		t.Errorf("generated fleet planned %d jobs and %d rollouts, want some of each", len(first.Jobs), len(first.Rollouts))
	}
	// Without decisions, the summary, jobs and rollouts are the same.
	lean, err := plan.Plan(fleet, snap, at, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first.Decisions = nil
	if diff := cmp.Diff(first, lean); diff != "" {
		t.Errorf("Options.Decisions changed more than the decisions (-with +without):\n%s", diff)
	}
}

func TestSummaryListsEveryDecision(t *testing.T) {
	res, err := plan.Plan(testFleet(), snapshot(), now, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[plan.Decision]int{}
	for _, d := range plan.AllDecisions {
		want[d] = 0
	}
	if diff := cmp.Diff(want, res.Summary); diff != "" {
		t.Errorf("summary of an empty snapshot (-want +got):\n%s", diff)
	}
	b, _ := json.Marshal(res)
	if !bytes.Contains(b, []byte(`"jobs":[]`)) || !bytes.Contains(b, []byte(`"rollouts":[]`)) {
		t.Errorf("empty plan marshals as %s, want empty lists rather than null", b)
	}
}

func TestPlanRejectsDuplicateEndpoints(t *testing.T) {
	_, err := plan.Plan(testFleet(), snapshot(ep("ws1", "canary"), ep("ws1", "pilot")), now, plan.Options{})
	if err == nil || err.Error() != `plan: duplicate endpoint id "ws1"` {
		t.Errorf("Plan error = %v, want duplicate endpoint id", err)
	}
}
