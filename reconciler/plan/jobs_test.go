package plan_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

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
		RebootPolicy: &protocol.RebootPolicy{Mode: "force", Deadline: "4h0m0s", Timezone: "UTC"},
		Revision:     "c0ffee", IdempotencyKey: j.IdempotencyKey}
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
