package plan_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// TestAgentVersionRollsOutLikeAnUpdate: the policy's agent version becomes
// an update of each endpoint that can take it, decided by the same rules
// as a patch.
func TestAgentVersionRollsOutLikeAnUpdate(t *testing.T) {
	agentID := protocol.AgentUpdateID("1.1.0")
	withAgent := func(v string, e *protocol.Endpoint) *protocol.Endpoint { e.AgentVersion = v; return e }
	type want struct {
		ep     string
		d      plan.Decision
		rule   string
		reason string
	}
	for _, tc := range []struct {
		name     string
		policy   func(c *schema.Client)
		eps      []*protocol.Endpoint
		releases func(string) error
		want     []want
		wantJobs map[string][]string
	}{
		{
			name:   "client version: canary gets a job, pilot waits for the canary, an up-to-date agent has it",
			policy: func(c *schema.Client) { c.Agent = &schema.AgentPolicy{Version: "1.1.0", Pos: pos(50)} },
			eps: []*protocol.Endpoint{
				withAgent("1.0.0", ep("c1", "canary")), withAgent("1.0.0", ep("c2", "canary")),
				withAgent("1.0.0", ep("p1", "pilot")), withAgent("1.1.0", ep("p2", "pilot")),
			},
			want: []want{
				{ep: "c1", d: plan.Missing, rule: rule(50)}, {ep: "c2", d: plan.Missing, rule: rule(50)},
				{ep: "p1", d: plan.WaitingRing}, {ep: "p2", d: plan.Installed, rule: rule(50)},
			},
			wantJobs: map[string][]string{"c1": {agentID}, "c2": {agentID}},
		},
		{
			name: "a ring's version wins over the client's",
			policy: func(c *schema.Client) {
				c.Agent = &schema.AgentPolicy{Version: "1.0.0", Pos: pos(50)}
				c.Rings[0].Agent = &schema.AgentPolicy{Version: "1.1.0", Pos: pos(11)}
			},
			eps: []*protocol.Endpoint{withAgent("1.0.0", ep("c1", "canary")), withAgent("1.0.0", ep("p1", "pilot"))},
			want: []want{
				{ep: "c1", d: plan.Missing, rule: rule(11)},
				{ep: "p1", d: plan.Installed, rule: rule(50)},
			},
			wantJobs: map[string][]string{"c1": {agentID}},
		},
		{
			name:   "agents without a version, with a development build or above the policy get nothing",
			policy: func(c *schema.Client) { c.Agent = &schema.AgentPolicy{Version: "1.1.0", Pos: pos(50)} },
			eps: []*protocol.Endpoint{
				ep("c1", "canary"), withAgent("devel", ep("c2", "canary")), withAgent("1.2.0", ep("c3", "canary")),
			},
		},
		{
			name:   "a version the controller cannot offer is unavailable, with the reason",
			policy: func(c *schema.Client) { c.Agent = &schema.AgentPolicy{Version: "1.1.0", Pos: pos(50)} },
			eps:    []*protocol.Endpoint{withAgent("1.0.0", ep("c1", "canary"))},
			releases: func(v string) error {
				return errors.New("no release directory " + v)
			},
			want: []want{{ep: "c1", d: plan.Unavailable, rule: rule(50), reason: "agent release 1.1.0 is not offered: no release directory 1.1.0"}},
		},
		{
			name:   "no agent policy: agents are left alone",
			policy: func(c *schema.Client) {},
			eps:    []*protocol.Endpoint{withAgent("1.0.0", ep("c1", "canary"))},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFleet()
			tc.policy(acme(f))
			snap := &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: tc.eps}
			res, err := plan.Plan(f, snap, now, plan.Options{Decisions: true, AgentReleases: tc.releases})
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, d := range res.Decisions {
				if d.Source != protocol.SourcePatchline {
					continue
				}
				w := want{ep: d.Endpoint, d: d.Decision, rule: d.Rule}
				if d.Decision == plan.Unavailable {
					w.reason = d.Reason
				}
				if d.Decision == plan.WaitingRing {
					w.rule = ""
				}
				got = append(got, w)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("agent update decisions (-want +got):\n%s", diff)
			}
			jobs := map[string][]string{}
			for _, j := range res.Jobs {
				jobs[j.Endpoint] = j.Updates
			}
			if tc.wantJobs == nil {
				tc.wantJobs = map[string][]string{}
			}
			if diff := cmp.Diff(tc.wantJobs, jobs); diff != "" {
				t.Errorf("jobs (-want +got):\n%s", diff)
			}
			for _, e := range tc.eps {
				for _, u := range e.Updates {
					if u.Source == protocol.SourcePatchline {
						t.Fatalf("Plan changed the snapshot: endpoint %s holds %s", e.ID, u.ID)
					}
				}
			}
		})
	}
}

// TestExplainAgentUpdate: why explains an agent update no endpoint
// reports, citing the agent entry.
func TestExplainAgentUpdate(t *testing.T) {
	f := testFleet()
	acme(f).Rings[0].Agent = &schema.AgentPolicy{Version: "1.1.0", Pos: pos(11)}
	e := ep("c1", "canary")
	e.AgentVersion = "1.0.0"
	snap := &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: []*protocol.Endpoint{e}}
	x, err := plan.Explain(f, snap, now, "c1", protocol.AgentUpdateID("1.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if x.Decision.Decision != plan.Missing || x.Desire == nil || x.Desire.Rule != rule(11) {
		t.Fatalf("explanation: decision %+v, desire %+v; want missing, cited at %s", x.Decision, x.Desire, rule(11))
	}
	if _, err := plan.Explain(f, snap, now, "c1", protocol.AgentUpdateID("1.2.0")); err == nil {
		t.Fatal("Explain of an agent update the policy does not ask for: no error")
	}
}
