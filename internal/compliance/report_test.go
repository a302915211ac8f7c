package compliance_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema/loader"
)

// inRevision is the revision the testdata audit log applies to acme on
// 2026-11-09; testdata/fleet is acme's policy at it.
const inRevision = "cccccccccccccccccccccccccccccccccccccccc"

// input is acme's November 2026, reported on 2026-12-02.
func input(t testing.TB) compliance.Input {
	t.Helper()
	f, err := os.Open("testdata/state.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	snap, err := protocol.DecodeSnapshot(f)
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.Open("testdata/audit.json")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	page, err := protocol.DecodeAuditPage(a)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	fleet, err := loader.New(loader.Options{Now: now}).LoadDir(context.Background(), "testdata/fleet")
	if err != nil {
		t.Fatal(err)
	}
	fleet.Revision = inRevision
	return compliance.Input{Client: "acme", Month: "2026-11", Now: now, Snapshot: snap, Audit: page.Entries, Fleet: fleet}
}

func TestReportGolden(t *testing.T) {
	r, err := compliance.Build(input(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"markdown", "csv", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := r.Write(&buf, format); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "acme-2026-11."+map[string]string{"markdown": "md", "csv": "csv", "json": "json"}[format]), buf.Bytes())
		})
	}
}

// TestReportFacts checks what an auditor reads in the report, one fact per
// row, independently of the golden files' layout.
func TestReportFacts(t *testing.T) {
	r, err := compliance.Build(input(t))
	if err != nil {
		t.Fatal(err)
	}
	installs := map[string]compliance.Install{}
	for _, in := range r.Installs {
		installs[in.Endpoint+" "+in.Update] = in
	}
	breaches := map[string]compliance.Breach{}
	for _, b := range r.Breaches {
		breaches[b.Endpoint+" "+b.Update] = b
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"a critical update installed in a day and a half is within its 14d SLA",
			installs["acme-ws-001 KB5035000"].Status == compliance.WithinSLA && installs["acme-ws-001 KB5035000"].TimeToInstall == compliance.Span(34*time.Hour+30*time.Minute)},
		{"an install names the job and the policy revision it came from",
			installs["acme-ws-001 KB5035000"].Job == "job-35" && installs["acme-ws-001 KB5035000"].Revision == inRevision},
		{"an important update installed after 35 days is late",
			installs["acme-ws-001 KB5036000"].Status == compliance.Late},
		{"a late install is also a breach, with its install time",
			breaches["acme-ws-001 KB5036000"].InstalledAt != nil},
		{"an update without severity is installed with no SLA", installs["acme-ws-001 7zip.7zip@24.09"].Status == compliance.NoSLA},
		{"an install before the month is not in the month", installs["acme-ws-001 KB5034441"].Update == ""},
		{"the SQL server's held update is a breach explained by its exclusion",
			strings.Contains(breaches["acme-sql01 KB5034441"].Explanation, "breaks the EHR vendor app") &&
				breaches["acme-sql01 KB5034441"].Rule == "clients/acme/policy.cue:17" && breaches["acme-sql01 KB5034441"].Decision == plan.Excluded},
		{"a failed canary install is a breach explained by the halt",
			strings.Contains(breaches["acme-ws-002 KB5037000"].Explanation, "halted in ring canary")},
		{"an update nothing approves is no breach", breaches["acme-ws-003 KB5038000"].Update == ""},
		{"an update not yet due is no breach", breaches["acme-ws-003 KB5039000"].Update == ""},
		{"another client's endpoints are not in the report", len(r.Endpoints) == 4},
		{"an endpoint unseen for 11 days is stale", r.Endpoints[3].ID == "acme-ws-003" && r.Endpoints[3].Stale},
		{"jobs of the month are counted (an interrupted install too), not October's nor globex's",
			r.Jobs == compliance.JobFigures{Created: 5, Succeeded: 3, Failed: 1, Interrupted: 1, Expired: 1}},
		{"revisions: the one in force on the 1st, the refused one with its problem, the applied fix",
			len(r.Revisions) == 3 && r.Revisions[0].Revision[0] == 'a' && r.Revisions[1].Status == "refused" &&
				len(r.Revisions[1].Problems) == 1 && strings.Contains(r.Revisions[1].Problems[0], "48 hours") && r.Revisions[2].Revision == inRevision},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: not so", tt.name)
		}
	}
}

func TestReportRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(*compliance.Input)
		want   string
	}{
		{"a month spelled as a date", func(in *compliance.Input) { in.Month = "2026-11-01" }, "want YYYY-MM"},
		{"a month not begun", func(in *compliance.Input) { in.Month = "2027-01" }, "has not begun"},
		{"a client the fleet does not have", func(in *compliance.Input) { in.Client = "initech" }, `no valid client "initech"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(t)
			tt.change(&in)
			_, err := compliance.Build(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestSpan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "0m",
		58*time.Hour + 30*time.Minute: "2d 10h 30m",
		14 * 24 * time.Hour:           "14d",
		-3 * time.Hour:                "-3h",
	} {
		if got := compliance.Span(d).String(); got != want {
			t.Errorf("Span(%v) = %q, want %q", d, got, want)
		}
	}
}
