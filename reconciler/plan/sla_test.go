package plan_test

import (
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

func TestDue(t *testing.T) {
	day := 24 * time.Hour
	release := now.Add(-10 * day) // 2026-11-02 12:00 UTC
	listedOn := func(added, due time.Time) protocol.KEVListing {
		return protocol.KEVListing{CVE: "CVE-2026-1234", DateAdded: added, DueDate: due}
	}
	date := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	// listed is a critical KB released ten days ago whose CVE CISA listed
	// on 2026-11-05, due 2026-11-26.
	listed := func(opts ...func(*protocol.Update)) *protocol.Update {
		opts = append([]func(*protocol.Update){withIntel(protocol.Intel{
			KEV: []protocol.KEVListing{listedOn(date(11, 5), date(11, 26))}, Feeds: stamps(protocol.FeedKEV),
		})}, opts...)
		return kb("KB1", "critical", opts...)
	}
	cisa := &schema.ExploitedSLA{CISA: true}
	within := func(d time.Duration) *schema.ExploitedSLA { return &schema.ExploitedSLA{Within: d} }
	tests := []struct {
		name      string
		exploited *schema.ExploitedSLA
		u         *protocol.Update
		due       time.Time
		rule      string
		noSLA     bool
	}{
		{"critical update: released plus the critical SLA", nil, kb("KB1", "critical"), release.Add(30 * day), "critical", false},
		{"known exploited, no knownExploited SLA: the severity's", nil, listed(), release.Add(30 * day), "critical", false},
		{"cisa: the end of CISA's due date, before the severity SLA", cisa, listed(), date(11, 27), schema.SLAKnownExploited, false},
		{"cisa: the earliest due date of the update's listings", cisa, listed(withIntel(protocol.Intel{
			KEV:   []protocol.KEVListing{listedOn(date(11, 5), date(11, 26)), listedOn(date(11, 1), date(11, 22))},
			Feeds: stamps(protocol.FeedKEV)})), date(11, 23), schema.SLAKnownExploited, false},
		{"cisa for an update the endpoint calls exploited, with no CISA listing: the severity's", cisa,
			kb("KB1", "critical", func(u *protocol.Update) { u.KnownExploited = true }), release.Add(30 * day), "critical", false},
		{"14d counts from the listing when it came after the release", within(14 * day), listed(), date(11, 19), schema.SLAKnownExploited, false},
		{"14d counts from the release when the CVE was listed before", within(14 * day), listed(released(date(11, 8))),
			date(11, 22), schema.SLAKnownExploited, false},
		{"14d for an update the endpoint calls exploited: from its release", within(14 * day),
			kb("KB1", "low", func(u *protocol.Update) { u.KnownExploited = true }), release.Add(14 * day), schema.SLAKnownExploited, false},
		{"the KEV catalog applied and silent: not known exploited, the severity's", within(14 * day),
			kb("KB1", "critical", func(u *protocol.Update) { u.KnownExploited = true }, withIntel(protocol.Intel{Feeds: stamps(protocol.FeedKEV)})),
			release.Add(30 * day), "critical", false},
		{"the effective severity's SLA", nil,
			kb("KB1", "low", withIntel(protocol.Intel{CVSS: 9.8, Severity: "critical", SeverityFrom: "cvss", Feeds: stamps(protocol.FeedNVD)})),
			release.Add(30 * day), "critical", false},
		{"unknown release time counts as now, never long ago", nil, kb("KB1", "important", released(time.Time{})), now.Add(30 * day), "important", false},
		{"a severity without an SLA", nil, kb("KB1", "low"), time.Time{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &schema.Client{ID: "acme", SLA: map[string]time.Duration{"critical": 30 * day, "important": 30 * day}, KnownExploitedSLA: tt.exploited}
			due, rule, ok := plan.Due(c, tt.u, now)
			if ok == tt.noSLA {
				t.Fatalf("Due ok = %v, want %v", ok, !tt.noSLA)
			}
			if !due.Equal(tt.due) || rule != tt.rule {
				t.Errorf("Due = %v by %q, want %v by %q", due, rule, tt.due, tt.rule)
			}
		})
	}
	if _, _, ok := plan.Due(nil, kb("KB1", "critical"), now); ok {
		t.Error("Due for a client the fleet does not have: ok, want no SLA")
	}
}
