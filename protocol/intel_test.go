package protocol

import (
	"slices"
	"testing"
	"time"
)

func TestEffectiveFields(t *testing.T) {
	listed := time.Date(2026, 11, 12, 0, 0, 0, 0, time.UTC)
	kev := FeedStamp{Feed: FeedKEV, FetchedAt: listed}
	tests := []struct {
		name      string
		u         Update
		cvss      float64
		severity  string
		exploited bool
		cves      []string
	}{
		{"no feed: what the endpoint reported", Update{CVSS: 7.5, Severity: "important", KnownExploited: true, CVEs: []string{"CVE-2026-1"}},
			7.5, "important", true, []string{"CVE-2026-1"}},
		{"NVD's score and the severity derived from it win over the reported ones",
			Update{CVSS: 5, Severity: "moderate", Intel: &Intel{CVSS: 9.8, Severity: "critical", SeverityFrom: "cvss"}}, 9.8, "critical", false, nil},
		{"the KEV catalog applied and silent: not known exploited, whatever was reported",
			Update{KnownExploited: true, Intel: &Intel{Feeds: []FeedStamp{kev}}}, 0, "", false, nil},
		{"the KEV catalog lists a CVE: known exploited",
			Update{Intel: &Intel{KEV: []KEVListing{{CVE: "CVE-2026-1234", DateAdded: listed}}, Feeds: []FeedStamp{kev}}}, 0, "", true, nil},
		{"the Debian tracker's CVEs join the reported ones",
			Update{CVEs: []string{"CVE-2026-2", "CVE-2026-1"}, Intel: &Intel{CVEs: []string{"CVE-2026-3", "CVE-2026-1"}}}, 0, "", false,
			[]string{"CVE-2026-1", "CVE-2026-2", "CVE-2026-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.EffectiveCVSS(); got != tt.cvss {
				t.Errorf("EffectiveCVSS = %v, want %v", got, tt.cvss)
			}
			if got := tt.u.EffectiveSeverity(); got != tt.severity {
				t.Errorf("EffectiveSeverity = %q, want %q", got, tt.severity)
			}
			if got := tt.u.EffectiveKnownExploited(); got != tt.exploited {
				t.Errorf("EffectiveKnownExploited = %v, want %v", got, tt.exploited)
			}
			if got := tt.u.AllCVEs(); !slices.Equal(got, tt.cves) {
				t.Errorf("AllCVEs = %v, want %v", got, tt.cves)
			}
		})
	}
}

func TestSeverityForCVSS(t *testing.T) {
	for score, want := range map[float64]string{0: "", 0.1: "low", 3.9: "low", 4: "moderate", 6.9: "moderate", 7: "important", 8.9: "important", 9: "critical", 10: "critical"} {
		if got := SeverityForCVSS(score); got != want {
			t.Errorf("SeverityForCVSS(%v) = %q, want %q", score, got, want)
		}
	}
}

func TestKEVDueIsTheEarliest(t *testing.T) {
	d1, d2 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	u := Update{Intel: &Intel{KEV: []KEVListing{{CVE: "CVE-2026-1", DueDate: d1}, {CVE: "CVE-2026-2", DueDate: d2}}}}
	if due, ok := u.KEVDue(); !ok || !due.Equal(d2) {
		t.Errorf("KEVDue = %v, %v; want %v", due, ok, d2)
	}
	if _, ok := (&Update{}).KEVDue(); ok {
		t.Error("KEVDue of an unlisted update = true")
	}
}
