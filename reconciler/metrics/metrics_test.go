package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func acme() *schema.Client {
	return &schema.Client{
		ID: "acme", StaleAfter: 7 * 24 * time.Hour,
		SLA:   map[string]time.Duration{"critical": 30 * 24 * time.Hour, "important": 30 * 24 * time.Hour},
		Rings: []schema.Ring{{Name: "canary"}, {Name: "broad"}},
		Exclusions: []schema.Exclusion{
			{Update: "KB1", Until: now.Add(10 * 24 * time.Hour)}, // active, expiring soon
			{Update: "KB2", Until: now.Add(60 * 24 * time.Hour)}, // active
			{Update: "KB3", Until: now.Add(-time.Hour)},          // expired
		},
	}
}

// endpoint is an endpoint of acme reporting KB9, a critical update.
func endpoint(id string, lastSeen time.Time, released time.Time) *protocol.Endpoint {
	return &protocol.Endpoint{ID: id, Client: "acme", LastSeen: lastSeen,
		Updates: []*protocol.Update{{ID: "KB9", Severity: "critical", Released: released}}}
}

// TestObserve reads the gauges one plan of acme produces: ws1 is
// compliant, ws2 misses a critical update released 40 days ago (an SLA
// breach), ws3 is stale and so counts as neither.
func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		endpoint("ws1", now, now.Add(-40*24*time.Hour)),
		endpoint("ws2", now, now.Add(-40*24*time.Hour)),
		endpoint("ws3", now.Add(-8*24*time.Hour), now.Add(-40*24*time.Hour)),
	}}
	res := &plan.Result{
		Summary: map[plan.Decision]int{plan.Installed: 1, plan.Missing: 1, plan.Halted: 1},
		Decisions: []plan.PairDecision{
			{Endpoint: "ws1", Client: "acme", Ring: "canary", Update: "KB9", Severity: "critical", Decision: plan.Installed},
			{Endpoint: "ws2", Client: "acme", Ring: "broad", Update: "KB9", Severity: "critical", Decision: plan.Missing},
			{Endpoint: "ws3", Client: "acme", Ring: "broad", Update: "KB9", Severity: "critical", Decision: plan.Halted},
		},
		Rollouts: []plan.Rollout{
			{Client: "acme", Update: "KB9", Ring: "canary", State: plan.RolloutHalted, Failed: 1},
			{Client: "acme", Update: "KB9", Ring: "broad", State: plan.RolloutHalted},
		},
	}
	m.Observe("acme", acme(), snap, res, now)

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"compliant endpoints", testutil.ToFloat64(m.endpoints.WithLabelValues("acme", EndpointCompliant)), 1},
		{"drifting endpoints", testutil.ToFloat64(m.endpoints.WithLabelValues("acme", EndpointDrifting)), 1},
		{"stale endpoints do not count as compliant", testutil.ToFloat64(m.endpoints.WithLabelValues("acme", EndpointStale)), 1},
		{"compliance ratio leaves stale endpoints out", testutil.ToFloat64(m.compliance.WithLabelValues("acme")), 0.5},
		{"missing critical updates in broad", testutil.ToFloat64(m.missing.WithLabelValues("acme", "broad", "critical")), 1},
		{"SLA breach: critical missing 40 days", testutil.ToFloat64(m.slaBreaches.WithLabelValues("acme", "critical")), 1},
		{"a halt counts in the ring that failed", testutil.ToFloat64(m.halted.WithLabelValues("acme", "canary")), 1},
		{"the rings a halt blocks do not count it again", testutil.ToFloat64(m.halted.WithLabelValues("acme", "broad")), 0},
		{"expired exclusions are not active", testutil.ToFloat64(m.exclusions.WithLabelValues("acme")), 2},
		{"exclusions expiring within 14 days", testutil.ToFloat64(m.expiring.WithLabelValues("acme")), 1},
		{"decisions by state", testutil.ToFloat64(m.decisions.WithLabelValues("acme", "missing")), 1},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	// A second plan replaces the client's series rather than adding to them.
	m.Observe("acme", acme(), snap, res, now)
	if got := testutil.ToFloat64(m.missing.WithLabelValues("acme", "broad", "critical")); got != 1 {
		t.Errorf("after a second observation, missing = %v, want 1", got)
	}
	m.Forget("acme")
	if n := testutil.CollectAndCount(m.endpoints); n != 0 {
		t.Errorf("after Forget, %d endpoint series remain", n)
	}
}

// TestLabelsAreBounded: no series may carry an endpoint or update id.
func TestLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.JobsCreated("acme", "canary", 2)
	m.JobResult("acme", "canary", protocol.ResultFailed)
	m.Applied("acme", "abc123", now)
	m.Refused("", "invalid", now)
	m.ReconcileDone(time.Millisecond)
	m.ReconcileFailed("plan")
	allowed := map[string]bool{"client": true, "ring": true, "source": true, "severity": true, "state": true, "result": true, "reason": true, "revision": true,
		// patchline_build_info's: one series per process.
		"version": true, "goversion": true}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "patchline_") {
			t.Errorf("metric %s lacks the patchline_ prefix", mf.GetName())
		}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %q", mf.GetName(), l.GetName())
				}
			}
		}
	}
	if got := testutil.ToFloat64(m.jobResults.WithLabelValues("acme", "canary", "failed")); got != 1 {
		t.Errorf("job results = %v, want 1", got)
	}
}

// TestKnownExploitedSLABreach: a critical update whose CVE CISA listed on
// 2026-11-05, due 2026-11-26, released 2026-11-01 and still missing,
// breaches by the client's sla.knownExploited before its 30-day critical
// SLA (2026-12-01) has passed.
func TestKnownExploitedSLABreach(t *testing.T) {
	date := func(m time.Month, d, h int) time.Time { return time.Date(2026, m, d, h, 0, 0, 0, time.UTC) }
	u := &protocol.Update{ID: "KB9", Severity: "critical", Released: date(11, 1, 12), Intel: &protocol.Intel{
		KEV:   []protocol.KEVListing{{CVE: "CVE-2026-1234", DateAdded: date(11, 5, 0), DueDate: date(11, 26, 0)}},
		Feeds: []protocol.FeedStamp{{Feed: protocol.FeedKEV, FetchedAt: date(11, 5, 6)}},
	}}
	tests := []struct {
		name      string
		exploited schema.ExploitedSLA
		at        time.Time
		breaches  float64
	}{
		{`"cisa", on CISA's due date`, schema.ExploitedSLA{CISA: true}, date(11, 26, 23), 0},
		{`"cisa", the day after CISA's due date`, schema.ExploitedSLA{CISA: true}, date(11, 27, 1), 1},
		{`"14d", 14 days after the release but not after the listing`, schema.ExploitedSLA{Within: 14 * 24 * time.Hour}, date(11, 16, 0), 0},
		{`"14d", just before 14 days after the listing`, schema.ExploitedSLA{Within: 14 * 24 * time.Hour}, date(11, 18, 23), 0},
		{`"14d", 14 days after the listing`, schema.ExploitedSLA{Within: 14 * 24 * time.Hour}, date(11, 19, 1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(prometheus.NewRegistry())
			c := acme()
			c.KnownExploitedSLA = &tt.exploited
			snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{{ID: "ws2", Client: "acme", LastSeen: tt.at, Updates: []*protocol.Update{u}}}}
			res := &plan.Result{
				Summary:   map[plan.Decision]int{plan.Missing: 1},
				Decisions: []plan.PairDecision{{Endpoint: "ws2", Client: "acme", Ring: "broad", Update: "KB9", Severity: "critical", Decision: plan.Missing}},
			}
			m.Observe("acme", c, snap, res, tt.at)
			if got := testutil.ToFloat64(m.slaBreaches.WithLabelValues("acme", "critical")); got != tt.breaches {
				t.Errorf("SLA breaches at %s = %v, want %v", tt.at.Format(time.RFC3339), got, tt.breaches)
			}
			if got := testutil.ToFloat64(m.exploitedLate.WithLabelValues("acme")); got != tt.breaches {
				t.Errorf("known-exploited SLA breaches at %s = %v, want %v", tt.at.Format(time.RFC3339), got, tt.breaches)
			}
			if got := testutil.ToFloat64(m.exploited.WithLabelValues("acme")); got != 1 {
				t.Errorf("missing known-exploited updates = %v, want 1", got)
			}
		})
	}
}

// TestRiskyDriftByClient: the known-exploited and high-EPSS series count
// the missing updates of non-stale endpoints by what the feeds say.
func TestRiskyDriftByClient(t *testing.T) {
	m := New(prometheus.NewRegistry())
	kev := []protocol.FeedStamp{{Feed: protocol.FeedKEV}, {Feed: protocol.FeedEPSS}}
	ups := []*protocol.Update{
		{ID: "KB1", Severity: "critical", Released: now, Intel: &protocol.Intel{KEV: []protocol.KEVListing{{CVE: "CVE-2026-1"}}, EPSS: 0.92, Feeds: kev}},
		{ID: "KB2", Severity: "critical", Released: now, Intel: &protocol.Intel{EPSS: 0.0999, Feeds: kev}},
		{ID: "KB3", Severity: "critical", Released: now, KnownExploited: true, Intel: &protocol.Intel{EPSS: 0.1, Feeds: kev}},
	}
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		{ID: "ws1", Client: "acme", LastSeen: now, Updates: ups},
		{ID: "ws9", Client: "acme", LastSeen: now.Add(-30 * 24 * time.Hour), Updates: ups},
	}}
	res := &plan.Result{Summary: map[plan.Decision]int{plan.Missing: 6}}
	for _, ep := range []string{"ws1", "ws9"} {
		for _, u := range ups {
			res.Decisions = append(res.Decisions, plan.PairDecision{Endpoint: ep, Client: "acme", Ring: "broad", Update: u.ID, Severity: "critical", Decision: plan.Missing})
		}
	}
	m.Observe("acme", acme(), snap, res, now)
	if got := testutil.ToFloat64(m.exploited.WithLabelValues("acme")); got != 1 {
		t.Errorf("known-exploited missing = %v, want 1 (KB1 on ws1: KB3's own flag does not count against the KEV feed, ws9 is stale)", got)
	}
	if got := testutil.ToFloat64(m.likely.WithLabelValues("acme")); got != 2 {
		t.Errorf("high-EPSS missing = %v, want 2 (KB1 and KB3, at or above %v)", got, HighEPSS)
	}
}

// TestRebootsPending counts, by client, the endpoints that are not stale
// and report a reboot pending, by the flag older agents send or by the
// reboot state.
func TestRebootsPending(t *testing.T) {
	m := New(prometheus.NewRegistry())
	ws := func(id string, lastSeen time.Time, pending bool, state *protocol.RebootState) *protocol.Endpoint {
		return &protocol.Endpoint{ID: id, Client: "acme", LastSeen: lastSeen, RebootPending: pending, Reboot: state}
	}
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		ws("flag", now, true, nil),
		ws("state", now, false, &protocol.RebootState{Mode: protocol.RebootPrompt, PendingSince: now.Add(-time.Hour), DeferralsUsed: 1}),
		ws("none", now, false, &protocol.RebootState{Mode: protocol.RebootPrompt}),
		ws("stale", now.Add(-8*24*time.Hour), true, nil),
		{ID: "other", Client: "globex", LastSeen: now, RebootPending: true},
	}}
	m.Observe("acme", acme(), snap, &plan.Result{Summary: map[plan.Decision]int{}}, now)
	if got := testutil.ToFloat64(m.rebootsPending.WithLabelValues("acme")); got != 2 {
		t.Errorf("patchline_reboots_pending{client=acme} = %v, want 2 (flag and state; none has nothing pending, stale is stale, other is globex's)", got)
	}
	m.Forget("acme")
	if n := testutil.CollectAndCount(m.rebootsPending); n != 0 {
		t.Errorf("after Forget, %d reboot series remain", n)
	}
}
