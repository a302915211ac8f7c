package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/reconciler/plan"
)

// TestEmergencyComesFirst: a plan with emergency entries says so before
// anything else, in text and Markdown, and a plan diff shows the head's;
// an expired entry says it lets nothing through.
func TestEmergencyComesFirst(t *testing.T) {
	at := time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)
	res := &plan.Result{Revision: "4f2a9c1e0b7d", Now: at, Summary: map[plan.Decision]int{},
		Emergencies: []plan.EmergencyEntry{
			{Client: "acme", Update: "KB5099999", Reason: "CVE-2026-1234 actively exploited", Until: time.Date(2026, 12, 11, 5, 0, 0, 0, time.UTC),
				SkipSoak: true, IgnoreWindows: true, Active: true, Rule: "clients/acme/policy.cue:40"},
			{Client: "acme", Update: "KB5000001", Reason: "old zero-day", Until: time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), Rule: "clients/acme/policy.cue:41"},
		}}
	wantText := "Plan of revision 4f2a9c1e0b7d at 2026-11-24 04:30 UTC\n" +
		"EMERGENCY entries (updates let through as written; never through exclusions or halts):\n" +
		"  acme KB5099999 through soaks, windows, until 2026-12-11 05:00 UTC: CVE-2026-1234 actively exploited (clients/acme/policy.cue:40)\n" +
		"  acme KB5000001 through nothing, EXPIRED 2026-11-02 05:00 UTC, lets nothing through: old zero-day (clients/acme/policy.cue:41)\n"
	var b bytes.Buffer
	if err := Plan(&b, Text, res, false); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), wantText) {
		t.Errorf("text plan starts:\n%s\nwant:\n%s", b.String()[:min(len(b.String()), len(wantText)+40)], wantText)
	}
	b.Reset()
	if err := Plan(&b, Markdown, res, false); err != nil {
		t.Fatal(err)
	}
	if want := "### Patchline plan for `4f2a9c1e0b7d`\n\n> [!WARNING]\n> EMERGENCY entries"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("markdown plan starts:\n%s\nwant %q", b.String(), want)
	}
	b.Reset()
	res.Jobs = []plan.Job{{Endpoint: "ws1", Client: "acme", Ring: "canary", Updates: []string{"KB5088888"}, NotAfter: at.Add(4 * time.Hour),
		Reboot: "if-required", Action: "rollback"}}
	if err := Plan(&b, Text, res, false); err != nil {
		t.Fatal(err)
	}
	if want := "reboot if-required ROLLBACK KB5088888\n"; !strings.Contains(b.String(), want) {
		t.Errorf("text plan:\n%s\nwant a job line ending %q", b.String(), want)
	}
	b.Reset()
	base := &plan.Result{Revision: "55b97a61c956", Now: at, Summary: map[plan.Decision]int{}}
	if err := WriteChange(&b, Text, Diff(base, res)); err != nil {
		t.Fatal(err)
	}
	if want := "Change 55b97a61c956 → 4f2a9c1e0b7d, planned at 2026-11-24 04:30 UTC\nEMERGENCY entries"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("plan diff starts:\n%s\nwant %q", b.String(), want)
	}
}
