package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler"
)

const (
	reportAdminToken = "report-admin-token"
	reportEnrollment = "acme-enrollment-secret"
)

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

// patchd is a real controller on loopback following a local fleet repo.
type patchd struct {
	t    *testing.T
	base string
}

func (p patchd) do(method, path string, headers map[string]string, body, out any) int {
	p.t.Helper()
	code, _ := apitest.Do(p.t, p.base, method, path, headers, body, out)
	return code
}

// waitStatus polls /v1/status until ok holds; a hang, not a timing
// assertion.
func (p patchd) waitStatus(what string, ok func(protocol.Status) bool) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st protocol.Status
		if code := p.do("GET", "/v1/status", map[string]string{"Authorization": "Bearer " + reportAdminToken}, nil, &st); code == 200 && ok(st) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

	secrets := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secrets, []byte(`{"adminToken": "`+reportAdminToken+`", "webhookSecret": "hook-secret", "enrollment": {"acme": "`+reportEnrollment+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(reportAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := reconciler.New(ctx, reconciler.Config{
		DataDir: t.TempDir(), RepoDir: repoDir, RepoBranch: "main", SecretsFile: secrets,
		Listen: "127.0.0.1:0", LongPollMax: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("patchd Run: %v", err)
		}
	})
	p := patchd{t: t, base: "http://" + c.Addr()}
	p.waitStatus("the first revision", func(st protocol.Status) bool {
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
		if code := p.do("POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
			Client: "acme", Secret: reportEnrollment, InstanceID: "instance-" + host, NodeKey: key,
			Hostname: host, OS: protocol.OS{Family: "windows"},
		}, &resp); code != 200 {
			t.Fatalf("enroll %s: %d", host, code)
		}
		ep := endpoint{id: resp.Endpoint, key: key}
		eps = append(eps, ep)
		if code := p.do("POST", protocol.PathReport, map[string]string{"Authorization": "Bearer " + key, protocol.HeaderEndpoint: ep.id},
			protocol.Report{Hostname: host, OS: protocol.OS{Family: "windows"}, Updates: []*protocol.Update{update()}}, nil); code != 200 {
			t.Fatalf("report %s: %d", host, code)
		}
	}

	// The workstation long-polls for its job and installs the update.
	ws := map[string]string{"Authorization": "Bearer " + eps[0].key, protocol.HeaderEndpoint: eps[0].id}
	var jobs protocol.JobsResponse
	for deadline := time.Now().Add(30 * time.Second); len(jobs.Jobs) == 0; {
		if code := p.do("GET", protocol.PathJobs+"?wait=5s", ws, nil, &jobs); code != 200 {
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
	if code := p.do("POST", protocol.ResultPath(job.ID), ws, protocol.ResultRequest{
		Job: job.ID, IdempotencyKey: job.IdempotencyKey,
		Updates: []protocol.UpdateResult{{Update: "KB5034441", Result: protocol.ResultSucceeded, At: time.Now()}},
	}, nil); code != 200 {
		t.Fatalf("result: %d", code)
	}

	// A broken commit is refused for acme, which keeps running the first.
	refused := commitFiles(t, repo, repoDir, map[string]string{"clients/acme/policy.cue": reportPolicy + "staleAfter: \"a week\"\n"}, "Relax staleAfter")
	p.waitStatus("the refusal", func(st protocol.Status) bool { return st.Refused != nil && st.Refused.Revision == refused })

	// --now has whole seconds: a moment after everything above.
	now := time.Now().Add(2 * time.Second)
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	month := now.In(chicago).Format("2006-01")
	args := []string{"report", "--controller", p.base, "--token-file", tokenFile, "--client", "acme", "--month", month,
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
