package plan_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

func TestExplainEvidence(t *testing.T) {
	yes := true
	at := func(t time.Time) *time.Time { return &t }
	listing := kevListed("CVE-2026-1234")
	// enriched is a KB every feed has something to say about.
	enriched := kb("KB1", "", func(u *protocol.Update) {
		u.CVSS, u.CVEs, u.KnownExploited, u.ReleasedFrom = 7.5, []string{"CVE-2026-1234"}, false, protocol.ReleasedFirstSeen
	}, withIntel(protocol.Intel{
		CVEs: []string{"CVE-2026-1235", "CVE-2026-1234"},
		CVSS: 9.8, CVSSVersion: "3.1", CVSSCVE: "CVE-2026-1234",
		EPSS: 0.93, EPSSCVE: "CVE-2026-1234",
		KEV:      []protocol.KEVListing{listing},
		Severity: "critical", SeverityFrom: "cvss",
		Feeds: stamps(protocol.FeedKEV, protocol.FeedNVD, protocol.FeedEPSS, protocol.FeedDebian),
	}))
	fetchedAt := at(fetched)
	everything := &plan.Evidence{
		KnownExploited: &plan.ExploitedEvidence{Value: true, Listings: []protocol.KEVListing{listing},
			Provenance: plan.Provenance{Source: protocol.FeedKEV, FetchedAt: fetchedAt}},
		CVEs: &plan.CVEEvidence{Reported: []string{"CVE-2026-1234"}, Added: []string{"CVE-2026-1235"},
			AddedBy: &plan.Provenance{Source: protocol.FeedDebian, FetchedAt: fetchedAt}},
		CVSS:     &plan.ScoreEvidence{Value: 9.8, CVE: "CVE-2026-1234", Version: "3.1", Provenance: plan.Provenance{Source: protocol.FeedNVD, FetchedAt: fetchedAt}},
		EPSS:     &plan.ScoreEvidence{Value: 0.93, CVE: "CVE-2026-1234", Provenance: plan.Provenance{Source: protocol.FeedEPSS, FetchedAt: fetchedAt}},
		Severity: &plan.SeverityEvidence{Severity: "critical", From: plan.SeverityFromCVSS, CVSS: 9.8},
		Released: &plan.ReleaseEvidence{At: at(enriched.Released), From: protocol.ReleasedFirstSeen},
	}
	every := []schema.ApproveRule{
		{Name: "kev", KnownExploited: &yes, MinAge: 30 * 24 * time.Hour, Pos: pos(33)},
		{Name: "regresshion", CVE: []string{"CVE-2024-6387"}, Pos: pos(34)},
		{Name: "scores", MinCVSS: 9.9, MinEPSS: 0.95, MinSeverity: "critical", Pos: pos(35)},
	}
	tests := []struct {
		name    string
		approve []schema.ApproveRule
		u       *protocol.Update
		want    *plan.Evidence
	}{
		{
			name:    "CISA's listing behind a knownExploited rule",
			approve: []schema.ApproveRule{{Name: "kev", KnownExploited: &yes, Pos: pos(33)}},
			u:       enriched,
			want:    &plan.Evidence{KnownExploited: everything.KnownExploited},
		},
		{
			name:    "not approved: every rule was weighed, every field they set is shown",
			approve: every,
			u:       enriched,
			want:    everything,
		},
		{
			name: "rules are weighed up to the one that approves",
			approve: []schema.ApproveRule{
				{Name: "high-cvss", MinCVSS: 9.9, Pos: pos(33)},
				{Name: "critical", MinSeverity: "critical", Pos: pos(34)},
				{Name: "likely-exploited", MinEPSS: 0.5, Pos: pos(35)},
			},
			u:    enriched,
			want: &plan.Evidence{CVSS: everything.CVSS, Severity: everything.Severity},
		},
		{
			name:    "rules matching by source and category alone weigh no data",
			approve: []schema.ApproveRule{{Name: "windows", Source: []string{"windows-update"}, Pos: pos(33)}},
			u:       enriched,
		},
		{
			name: "without feeds: the endpoint's word, and an unknown release time",
			approve: []schema.ApproveRule{{Name: "reported", KnownExploited: &yes, MinCVSS: 9, MinEPSS: 0.5, MinSeverity: "critical",
				CVE: []string{"CVE-2024-6387"}, MinAge: time.Hour, Pos: pos(33)}},
			u: kb("KB1", "important", released(time.Time{}), func(u *protocol.Update) { u.CVSS, u.KnownExploited = 7.5, true }),
			want: &plan.Evidence{
				KnownExploited: &plan.ExploitedEvidence{Value: true, Reported: true, Provenance: plan.Provenance{Source: plan.SourceEndpoint}},
				CVEs:           &plan.CVEEvidence{},
				CVSS:           &plan.ScoreEvidence{Value: 7.5, Provenance: plan.Provenance{Source: plan.SourceEndpoint}},
				EPSS:           &plan.ScoreEvidence{},
				Severity:       &plan.SeverityEvidence{Severity: "important", From: plan.SeverityFromVendor},
				Released:       &plan.ReleaseEvidence{},
			},
		},
		{
			name:    "the KEV catalog applied and silent overrules the endpoint",
			approve: []schema.ApproveRule{{Name: "kev", KnownExploited: &yes, Pos: pos(33)}},
			u:       kb("KB1", "important", func(u *protocol.Update) { u.KnownExploited = true }, withIntel(protocol.Intel{Feeds: stamps(protocol.FeedKEV)})),
			want: &plan.Evidence{KnownExploited: &plan.ExploitedEvidence{Reported: true,
				Provenance: plan.Provenance{Source: protocol.FeedKEV, FetchedAt: fetchedAt}}},
		},
		{
			name:    "a requirement names the update: no approve rule is weighed",
			approve: every,
			u:       kb("KB100", "", func(u *protocol.Update) { u.Intel = enriched.Intel }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFleet()
			acme(f).Baseline.Approve = tt.approve
			x, err := plan.Explain(f, snapshot(ep("ws1", "canary", tt.u)), now, "ws1", tt.u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, x.Evidence); diff != "" {
				t.Errorf("evidence (-want +got):\n%s", diff)
			}
		})
	}
}
