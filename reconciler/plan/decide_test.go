package plan_test

import (
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

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
