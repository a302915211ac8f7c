package render

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

var (
	fetched = time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	listing = protocol.KEVListing{CVE: "CVE-2026-1234", DateAdded: time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC), DueDate: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
)

func from(feed string) plan.Provenance { return plan.Provenance{Source: feed, FetchedAt: &fetched} }

var reported = plan.Provenance{Source: plan.SourceEndpoint}

func TestEvidenceLines(t *testing.T) {
	released := time.Date(2026, 11, 20, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    *plan.Evidence
		want []string
	}{
		{"listed by CISA", &plan.Evidence{KnownExploited: &plan.ExploitedEvidence{Value: true, Listings: []protocol.KEVListing{listing}, Provenance: from(protocol.FeedKEV)}},
			[]string{"knownExploited: CVE-2026-1234 listed by CISA on 2026-11-12, due 2026-12-03 (feed fetched 2026-11-29 06:00 UTC)"}},
		{"CISA's catalog silent, the endpoint says exploited", &plan.Evidence{KnownExploited: &plan.ExploitedEvidence{Reported: true, Provenance: from(protocol.FeedKEV)}},
			[]string{"knownExploited: no: CISA's catalog lists none of its CVEs, though the endpoint reported it known exploited (feed fetched 2026-11-29 06:00 UTC)"}},
		{"known exploited by the endpoint's word", &plan.Evidence{KnownExploited: &plan.ExploitedEvidence{Value: true, Reported: true, Provenance: reported}},
			[]string{"knownExploited: yes (reported by the endpoint)"}},
		{"CVEs reported and added by the Debian tracker", &plan.Evidence{CVEs: &plan.CVEEvidence{Reported: []string{"CVE-2023-51385"},
			Added: []string{"CVE-2024-6387", "CVE-2024-6409"}, AddedBy: &plan.Provenance{Source: protocol.FeedDebian, FetchedAt: &fetched}}},
			[]string{"cve: CVE-2023-51385 (reported by the endpoint); CVE-2024-6387, CVE-2024-6409 (Debian Security Tracker, fetched 2026-11-29 06:00 UTC)"}},
		{"no CVEs", &plan.Evidence{CVEs: &plan.CVEEvidence{}}, []string{"cve: none reported or added by a feed"}},
		{"NVD's score", &plan.Evidence{CVSS: &plan.ScoreEvidence{Value: 9.8, CVE: "CVE-2026-1234", Version: "3.1", Provenance: from(protocol.FeedNVD)}},
			[]string{"cvss: 9.8 (CVSS 3.1, CVE-2026-1234, NVD, fetched 2026-11-29 06:00 UTC)"}},
		{"the reported score", &plan.Evidence{CVSS: &plan.ScoreEvidence{Value: 7.5, Provenance: reported}}, []string{"cvss: 7.5 (reported by the endpoint)"}},
		{"no score", &plan.Evidence{CVSS: &plan.ScoreEvidence{}}, []string{"cvss: none (none reported, no NVD score)"}},
		{"FIRST's probability", &plan.Evidence{EPSS: &plan.ScoreEvidence{Value: 0.93, CVE: "CVE-2026-1234", Provenance: from(protocol.FeedEPSS)}},
			[]string{"epss: 0.93 (CVE-2026-1234, FIRST, fetched 2026-11-29 06:00 UTC)"}},
		{"FIRST scores none", &plan.Evidence{EPSS: &plan.ScoreEvidence{Provenance: from(protocol.FeedEPSS)}},
			[]string{"epss: none (FIRST scores none of its CVEs, fetched 2026-11-29 06:00 UTC)"}},
		{"no EPSS feed", &plan.Evidence{EPSS: &plan.ScoreEvidence{}}, []string{"epss: none (no EPSS feed applied)"}},
		{"severity derived from CVSS", &plan.Evidence{Severity: &plan.SeverityEvidence{Severity: "critical", From: plan.SeverityFromCVSS, CVSS: 9.8}},
			[]string{"severity: critical (derived from CVSS 9.8)"}},
		{"the vendor's severity", &plan.Evidence{Severity: &plan.SeverityEvidence{Severity: "important", From: plan.SeverityFromVendor}},
			[]string{"severity: important (vendor)"}},
		{"no severity", &plan.Evidence{Severity: &plan.SeverityEvidence{}}, []string{"severity: none (no vendor rating, no CVSS score)"}},
		{"released, by the vendor", &plan.Evidence{Released: &plan.ReleaseEvidence{At: &released, From: protocol.ReleasedByVendor}},
			[]string{"released: 2026-11-20 (vendor)"}},
		{"first seen by the fleet", &plan.Evidence{Released: &plan.ReleaseEvidence{At: &released, From: protocol.ReleasedFirstSeen}},
			[]string{"released: 2026-11-20 (first seen by the fleet; the source gives no date)"}},
		{"a snapshot that does not say who dated it", &plan.Evidence{Released: &plan.ReleaseEvidence{At: &released}},
			[]string{"released: 2026-11-20 (as reported)"}},
		{"release time unknown", &plan.Evidence{Released: &plan.ReleaseEvidence{}}, []string{"released: unknown, counted as now"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, evidenceLines(tt.e)); diff != "" {
				t.Errorf("evidence lines (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWhyWithEvidence renders the explanation of a KB that CISA lists,
// approved by a knownExploited rule after a minCVSS rule did not match;
// read testdata/why-evidence.txt to see where the evidence goes.
func TestWhyWithEvidence(t *testing.T) {
	now := time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC)
	released := time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC)
	closes := now.Add(3*time.Hour + 30*time.Minute)
	x := &plan.Explanation{
		Endpoint: "acme-ws-001", Client: "acme", Update: "KB5046617", Revision: "4f2a9c1e0b7d3a5f8e6c2b1a0d9f8e7c6b5a4d3e", Now: now, KnownClient: true,
		Ring:    &plan.Citation{Kind: "ring", Name: "canary", Rule: "clients/acme/policy.cue:8", Detail: "ring 1 of 3, the first whose select matches"},
		Desire:  &plan.Citation{Kind: "approve", Name: "exploited", Rule: "fleet.cue:18", Detail: `approved by rule "exploited"`},
		Desired: true,
		Evidence: &plan.Evidence{
			KnownExploited: &plan.ExploitedEvidence{Value: true, Listings: []protocol.KEVListing{listing}, Provenance: from(protocol.FeedKEV)},
			CVSS:           &plan.ScoreEvidence{Value: 9.8, CVE: "CVE-2026-1234", Version: "3.1", Provenance: from(protocol.FeedNVD)},
			Released:       &plan.ReleaseEvidence{At: &released, From: protocol.ReleasedByVendor},
		},
		Rollouts: []plan.Rollout{{Client: "acme", Update: "KB5046617", Ring: "canary", Counted: 1, State: plan.RolloutInProgress, EligibleAt: &released, Rule: "clients/acme/policy.cue:8"}},
		Window:   &plan.WindowState{Name: "weeknights", Rule: "fleet.cue:23", Open: true, Closes: &closes},
		Decision: plan.PairDecision{Endpoint: "acme-ws-001", Client: "acme", Ring: "canary", Update: "KB5046617", Source: "windows-update",
			Severity: "critical", Decision: plan.Missing, Rule: "fleet.cue:18", Reason: `approved by rule "exploited"`},
	}
	var b strings.Builder
	if err := Why(&b, x, nil); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "why-evidence.txt"), []byte(b.String()))
}

// TestWhyAfterAnInterruption renders the explanation of an update whose
// job was interrupted (the agent stopped while installing) and that the
// inventory after the restart shows still missing: retried in the same
// window; read testdata/why-interrupted.txt.
func TestWhyAfterAnInterruption(t *testing.T) {
	now := time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)
	released := time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC)
	closes := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	x := &plan.Explanation{
		Endpoint: "acme-ws-001", Client: "acme", Update: "KB5046617", Revision: "4f2a9c1e0b7d3a5f8e6c2b1a0d9f8e7c6b5a4d3e", Now: now, KnownClient: true,
		Ring:     &plan.Citation{Kind: "ring", Name: "canary", Rule: "clients/acme/policy.cue:8", Detail: "ring 1 of 3, the first whose select matches"},
		Desire:   &plan.Citation{Kind: "approve", Name: "security", Rule: "fleet.cue:17", Detail: `approved by rule "security"`},
		Desired:  true,
		Rollouts: []plan.Rollout{{Client: "acme", Update: "KB5046617", Ring: "canary", Counted: 1, State: plan.RolloutInProgress, EligibleAt: &released, Rule: "clients/acme/policy.cue:8"}},
		Window:   &plan.WindowState{Name: "weeknights", Rule: "fleet.cue:23", Open: true, Closes: &closes},
		// What plan.Explain gives for it.
		Interruptions: 1,
		Decision: plan.PairDecision{Endpoint: "acme-ws-001", Client: "acme", Ring: "canary", Update: "KB5046617", Source: "windows-update",
			Severity: "critical", Decision: plan.Missing, Rule: "fleet.cue:17",
			Reason: "interrupted at 2026-11-23 22:12 CST (job 8c1f0e2a); still missing by the inventory of 2026-11-23 22:14 CST, retried"},
	}
	var b strings.Builder
	if err := Why(&b, x, nil); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "why-interrupted.txt"), []byte(b.String()))
}
