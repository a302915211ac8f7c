package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

const reportEnrollment = "acme-enrollment-secret"

// reportPolicy approves critical security updates at once, holds
// KB5034441 on the SQL server, and gives critical updates 14 days.
const reportPolicy = `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "America/Chicago"}
sla: {critical: "14d"}
windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}
rings: [{name: "all", select: {}, window: "always", soak: "0m"}]
baseline: approve: [{name: "critical", category: ["security"], minSeverity: "critical"}]
exclusions: [{update: "KB5034441", select: hostnames: ["ACME-SQL01"], reason: "breaks the EHR vendor app", ticket: "PSA-1234", until: "2099-12-31"}]
`

// commitFiles writes files into the working tree dir and commits them on
// its branch.
func commitFiles(t *testing.T, repo *git.Repository, dir string, files map[string]string, msg string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Sam Tech", Email: "sam@msp.example", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestReportAgainstPatchd runs patchctl report against a real patchd on
// loopback: two endpoints enroll and report a critical update released 20
// days ago; one installs it through a real job, the other holds it by an
// exclusion; then a broken commit is refused.
func TestReportAgainstPatchd(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := git.PlainInitWithOptions(repoDir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	applied := commitFiles(t, repo, repoDir, map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               "package fleet\n",
		"clients/acme/policy.cue": reportPolicy,
	}, "Onboard Acme Dental (#1)")

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(patchdtest.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := patchdtest.Start(t, patchdtest.Config(t, repoDir, map[string]string{"acme": reportEnrollment}))
	do := func(method, path string, headers map[string]string, body, out any) int {
		t.Helper()
		code, _ := apitest.Do(t, p.URL, method, path, headers, body, out)
		return code
	}
	p.WaitStatus("the first revision", func(st protocol.Status) bool {
		for _, r := range st.Revisions {
			if r.Client == "acme" && r.Applied == applied {
				return true
			}
		}
		return false
	})

	released := time.Now().Add(-20 * 24 * time.Hour).UTC().Truncate(time.Second)
	update := func() *protocol.Update {
		return &protocol.Update{ID: "KB5034441", Source: "windows-update", Name: "KB5034441", Title: "Cumulative Update",
			Category: "security", Severity: "critical", Released: released}
	}
	type endpoint struct{ id, key string }
	var eps []endpoint
	for _, host := range []string{"ACME-WS-001", "ACME-SQL01"} {
		key := "node-key-0123456789abcdef0123456789abcdef-" + host
		var resp protocol.EnrollResponse
		if code := do("POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
			Client: "acme", Secret: reportEnrollment, InstanceID: "instance-" + host, NodeKey: key,
			Hostname: host, OS: protocol.OS{Family: "windows"},
		}, &resp); code != 200 {
			t.Fatalf("enroll %s: %d", host, code)
		}
		ep := endpoint{id: resp.Endpoint, key: key}
		eps = append(eps, ep)
		if code := do("POST", protocol.PathReport, map[string]string{"Authorization": "Bearer " + key, protocol.HeaderEndpoint: ep.id},
			protocol.Report{Hostname: host, OS: protocol.OS{Family: "windows"}, Updates: []*protocol.Update{update()}}, nil); code != 200 {
			t.Fatalf("report %s: %d", host, code)
		}
	}

	// The workstation long-polls for its job and installs the update.
	ws := map[string]string{"Authorization": "Bearer " + eps[0].key, protocol.HeaderEndpoint: eps[0].id}
	var jobs protocol.JobsResponse
	for deadline := time.Now().Add(30 * time.Second); len(jobs.Jobs) == 0; {
		if code := do("GET", protocol.PathJobs+"?wait=5s", ws, nil, &jobs); code != 200 {
			t.Fatalf("jobs: %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatal("no job for the workstation")
		}
	}
	var job protocol.JobPayload
	if err := json.Unmarshal(jobs.Jobs[0].Payload, &job); err != nil {
		t.Fatal(err)
	}
	if code := do("POST", protocol.ResultPath(job.ID), ws, protocol.ResultRequest{
		Job: job.ID, IdempotencyKey: job.IdempotencyKey,
		Updates: []protocol.UpdateResult{{Update: "KB5034441", Result: protocol.ResultSucceeded, At: time.Now()}},
	}, nil); code != 200 {
		t.Fatalf("result: %d", code)
	}

	// A broken commit is refused for acme, which keeps running the first.
	refused := commitFiles(t, repo, repoDir, map[string]string{"clients/acme/policy.cue": reportPolicy + "staleAfter: \"a week\"\n"}, "Relax staleAfter")
	p.WaitStatus("the refusal", func(st protocol.Status) bool { return st.Refused != nil && st.Refused.Revision == refused })
	// The status shows a refusal before its audit entry, which the report
	// reads, is stored.
	waitAudit(t, p, "the refusal in the audit log", func(e protocol.AuditEntry) bool {
		return e.Kind == protocol.AuditRevisionRefused && e.Revision == refused
	})

	// --now has whole seconds: a moment after everything above.
	now := time.Now().Add(2 * time.Second)
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	month := now.In(chicago).Format("2006-01")
	args := []string{"report", "--controller", p.URL, "--token-file", tokenFile, "--client", "acme", "--month", month,
		"--repo", repoDir, "--now", now.UTC().Format(time.RFC3339)}

	code, out, errOut := run(t, append(args, "--format", "json")...)
	if code != 0 {
		t.Fatalf("report --format json: exit %d: %s", code, errOut)
	}
	var r struct {
		Revision string `json:"revision"`
		Installs []struct {
			Hostname, Update, Status, Job, Revision string
		} `json:"installs"`
		Breaches []struct {
			Hostname, Update, Explanation, Rule string
			Decision                            string
			InstalledAt                         *time.Time
		} `json:"breaches"`
		Revisions []struct{ Revision, Status string } `json:"revisions"`
		Jobs      compliance.JobFigures               `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, out)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"judged by the revision acme runs", r.Revision == applied},
		{"the workstation's install, late, from the job and its revision",
			len(r.Installs) == 1 && r.Installs[0].Hostname == "ACME-WS-001" && r.Installs[0].Status == compliance.Late &&
				r.Installs[0].Job == job.ID && r.Installs[0].Revision == applied},
		{"two breaches: the late install and the held update", len(r.Breaches) == 2},
		{"the SQL server's breach is explained by its exclusion",
			len(r.Breaches) == 2 && r.Breaches[0].Hostname == "ACME-SQL01" && r.Breaches[0].Decision == "excluded" &&
				strings.Contains(r.Breaches[0].Explanation, "breaks the EHR vendor app") && r.Breaches[0].Rule == "clients/acme/policy.cue:8"},
		{"the workstation's breach is its late install",
			len(r.Breaches) == 2 && r.Breaches[1].Hostname == "ACME-WS-001" && r.Breaches[1].InstalledAt != nil},
		{"one job sent, one update succeeded", r.Jobs == compliance.JobFigures{Created: 1, Succeeded: 1}},
		{"the applied and the refused revisions",
			len(r.Revisions) == 2 && r.Revisions[0].Revision == applied && r.Revisions[1].Revision == refused && r.Revisions[1].Status == "refused"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so; report:\n%s", c.name, out)
		}
	}

	// A read token limited to acme, as a client's own reporting job would
	// hold, makes the same report.
	acmeToken := filepath.Join(t.TempDir(), "acme-token")
	if code, _, errOut := run(t, "tokens", "create", "acme-report", "--scope", "read", "--client", "acme",
		"--controller", p.URL, "--token-file", tokenFile, "--out", acmeToken); code != 0 {
		t.Fatalf("tokens create: exit %d: %s", code, errOut)
	}
	limited := slices.Clone(args)
	limited[slices.Index(limited, tokenFile)] = acmeToken
	if code, got, errOut := run(t, append(limited, "--format", "json")...); code != 0 || got != out {
		t.Errorf("report with a read token limited to acme: exit %d: %s\n%s\nwant the admin token's:\n%s", code, errOut, got, out)
	}

	code, out, errOut = run(t, args...)
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"# Patch compliance report: Acme Dental (acme)", "| ACME-SQL01 | KB5034441 Cumulative Update | critical |", "`" + applied[:12] + "` | applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown report lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = run(t, append(args, "--format", "csv")...)
	if code != 0 || !strings.HasPrefix(out, "record,endpoint,hostname,update") || strings.Count(out, "\n") != 4 {
		t.Errorf("csv report: exit %d, stderr %s:\n%s", code, errOut, out)
	}
}

func TestReportCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"report", "--controller", "http://127.0.0.1:1", "--client", "acme", "--month", "2026-11", "--format", "pdf"}, `unknown format "pdf"`},
		{"no month", []string{"report", "--controller", "http://127.0.0.1:1", "--client", "acme"}, `required flag(s) "month" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want it to contain %q", code, errOut, tt.want)
			}
		})
	}
}

// waitAudit polls the first page of the controller's audit log until an
// entry satisfies ok; a hang, not a timing assertion.
func waitAudit(t *testing.T, p *patchdtest.Patchd, what string, ok func(protocol.AuditEntry) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var page protocol.AuditPage
		if code, body := apitest.Do(t, p.URL, "GET", "/v1/audit?limit=1000", map[string]string{"Authorization": "Bearer " + patchdtest.AdminToken}, nil, &page); code != 200 {
			t.Fatalf("GET /v1/audit: %d %s", code, body)
		}
		if slices.ContainsFunc(page.Entries, ok) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
