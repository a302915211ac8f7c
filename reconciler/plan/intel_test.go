package plan_test

import (
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// fetched is when the test's feeds were fetched, six hours before now.
var fetched = now.Add(-6 * time.Hour)

// stamps are the feeds applied, all fetched at fetched.
func stamps(feeds ...string) []protocol.FeedStamp {
	var out []protocol.FeedStamp
	for _, f := range feeds {
		out = append(out, protocol.FeedStamp{Feed: f, FetchedAt: fetched})
	}
	return out
}

// withIntel sets what the controller learnt of an update from the feeds.
func withIntel(in protocol.Intel) func(*protocol.Update) {
	return func(u *protocol.Update) { u.Intel = &in }
}

// kevListed is CISA's listing of cve, added a week before now, due two
// weeks after that.
func kevListed(cve string) protocol.KEVListing {
	added := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	return protocol.KEVListing{CVE: cve, DateAdded: added, DueDate: added.AddDate(0, 0, 14)}
}

// approveOnly replaces acme's baseline with one approve rule at line 33.
func approveOnly(r schema.ApproveRule) func(*schema.Fleet) {
	return func(f *schema.Fleet) {
		r.Pos = pos(33)
		acme(f).Baseline = schema.Baseline{Approve: []schema.ApproveRule{r}}
	}
}

func TestApproveRulesWeighFeeds(t *testing.T) {
	yes := true
	runPlanCases(t, []planCase{
		{
			name:  "a CVE in CISA's KEV catalog makes a knownExploited rule approve the KB that fixes it",
			fleet: approveOnly(schema.ApproveRule{Name: "kev", KnownExploited: &yes}),
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "important", func(u *protocol.Update) { u.CVEs = []string{"CVE-2026-1234"} },
					withIntel(protocol.Intel{KEV: []protocol.KEVListing{kevListed("CVE-2026-1234")}, Feeds: stamps(protocol.FeedKEV)})),
				kb("KB2", "important", func(u *protocol.Update) { u.CVEs = []string{"CVE-2026-9999"} },
					withIntel(protocol.Intel{Feeds: stamps(protocol.FeedKEV)})),
			)},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.Missing, rule: rule(33)},
				{ep: "ws1", update: "KB2", d: plan.NotApproved},
			},
		},
		{
			name:  "the KEV catalog applied and silent: not known exploited, though the endpoint reported it",
			fleet: approveOnly(schema.ApproveRule{Name: "kev", KnownExploited: &yes}),
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "important", func(u *protocol.Update) { u.KnownExploited = true }, withIntel(protocol.Intel{Feeds: stamps(protocol.FeedKEV)})),
				kb("KB2", "important", func(u *protocol.Update) { u.KnownExploited = true }),
			)},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.NotApproved},
				// Without the catalog, the endpoint's word stands.
				{ep: "ws1", update: "KB2", d: plan.Missing, rule: rule(33)},
			},
		},
		{
			name:  "NVD's score makes minCVSS match where the reported one would not",
			fleet: approveOnly(schema.ApproveRule{Name: "high-cvss", MinCVSS: 8}),
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "important", func(u *protocol.Update) { u.CVSS = 7.5 },
					withIntel(protocol.Intel{CVSS: 9.8, CVSSVersion: "3.1", CVSSCVE: "CVE-2026-1234", Feeds: stamps(protocol.FeedNVD)})),
				kb("KB2", "important", func(u *protocol.Update) { u.CVSS = 7.5 }),
				kb("KB3", "important", func(u *protocol.Update) { u.CVSS = 9.1 },
					withIntel(protocol.Intel{CVSS: 6.5, CVSSVersion: "3.1", CVSSCVE: "CVE-2026-1235", Feeds: stamps(protocol.FeedNVD)})),
			)},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.Missing, rule: rule(33)},
				{ep: "ws1", update: "KB2", d: plan.NotApproved},
				{ep: "ws1", update: "KB3", d: plan.NotApproved},
			},
		},
		{
			name:  "minEPSS matches at and above the threshold only",
			fleet: approveOnly(schema.ApproveRule{Name: "likely-exploited", MinEPSS: 0.5}),
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "low", withIntel(protocol.Intel{EPSS: 0.49, EPSSCVE: "CVE-2026-1", Feeds: stamps(protocol.FeedEPSS)})),
				kb("KB2", "low", withIntel(protocol.Intel{EPSS: 0.5, EPSSCVE: "CVE-2026-2", Feeds: stamps(protocol.FeedEPSS)})),
				kb("KB3", "low", withIntel(protocol.Intel{EPSS: 0.93, EPSSCVE: "CVE-2026-3", Feeds: stamps(protocol.FeedEPSS)})),
				kb("KB4", "low"),
			)},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.NotApproved},
				{ep: "ws1", update: "KB2", d: plan.Missing, rule: rule(33)},
				{ep: "ws1", update: "KB3", d: plan.Missing, rule: rule(33)},
				{ep: "ws1", update: "KB4", d: plan.NotApproved},
			},
		},
		{
			name:  "cve matches a CVE the Debian Security Tracker added to those reported",
			fleet: approveOnly(schema.ApproveRule{Name: "regresshion", CVE: []string{"CVE-2024-6387", "CVE-2024-6409"}}),
			eps: []*protocol.Endpoint{ep("srv1", "canary",
				pkg("openssh-server", "1:9.2p1-2+deb12u3", func(u *protocol.Update) { u.CVEs = []string{"CVE-2023-51385"} },
					withIntel(protocol.Intel{CVEs: []string{"CVE-2024-6387"}, Feeds: stamps(protocol.FeedDebian)})),
				pkg("openssh-client", "1:9.2p1-2+deb12u3", func(u *protocol.Update) { u.CVEs = []string{"CVE-2024-6409"} }),
				pkg("curl", "7.88.1-10+deb12u8", func(u *protocol.Update) { u.CVEs = []string{"CVE-2024-2398"} }),
			)},
			want: []want{
				{ep: "srv1", update: "openssh-server@1:9.2p1-2+deb12u3", d: plan.Missing, rule: rule(33)},
				{ep: "srv1", update: "openssh-client@1:9.2p1-2+deb12u3", d: plan.Missing, rule: rule(33)},
				{ep: "srv1", update: "curl@7.88.1-10+deb12u8", d: plan.NotApproved},
			},
		},
		{
			name: "a severity derived from CVSS makes minSeverity match, and decisions carry it",
			eps: []*protocol.Endpoint{ep("ws1", "canary",
				kb("KB1", "", withIntel(protocol.Intel{CVSS: 9.8, Severity: "critical", SeverityFrom: "cvss", Feeds: stamps(protocol.FeedNVD)})),
				kb("KB2", ""),
			)},
			want: []want{
				{ep: "ws1", update: "KB1", d: plan.Missing, rule: rule(30), severity: "critical"},
				{ep: "ws1", update: "KB2", d: plan.NotApproved},
			},
		},
	})
}
