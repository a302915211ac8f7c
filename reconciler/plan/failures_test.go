package plan_test

import (
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

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
