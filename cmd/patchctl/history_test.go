package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/golden"
)

// historyRepo builds a small fleet repository with fixed authors and dates:
// acme onboarded, an exclusion merged from a pull request, the pilot soak
// shortened.
func historyRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	policy := func(soak, extra string) string {
		return `package fleet

client: {id: "acme", name: "Acme Dental", timezone: "America/Chicago"}
windows: weeknights: {days: ["mon", "tue", "wed", "thu"], start: "22:00", duration: "4h"}
rings: [
	{name: "canary", select: labels: ring: "canary", window: "weeknights"},
	{name: "pilot", select: labels: ring: "pilot", window: "weeknights", soak: "` + soak + `"},
]
baseline: approve: [{name: "security", category: ["security"], minSeverity: "important", minAge: "2d"}]
` + extra
	}
	steps := []struct {
		author, msg string
		files       map[string]string
	}{
		{"Dana Lead", "Onboard Acme Dental", map[string]string{
			"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
			"fleet.cue":               "package fleet\n",
			"clients/acme/policy.cue": policy("72h", ""),
		}},
		{"Sam Tech", "Merge pull request #42 from msp/hold-sql\n\nHold KB5034441 on the SQL server", map[string]string{
			"clients/acme/policy.cue": policy("72h", `exclusions: [{update: "KB5034441", select: hostnames: ["ACME-SQL01"], reason: "breaks the EHR vendor app", ticket: "PSA-1234", until: "2026-12-31"}]`+"\n"),
		}},
		{"Kim Tech", "Shorten the pilot soak (#43)", map[string]string{
			"clients/acme/policy.cue": policy("48h", `exclusions: [{update: "KB5034441", select: hostnames: ["ACME-SQL01"], reason: "breaks the EHR vendor app", ticket: "PSA-1234", until: "2026-12-31"}]`+"\n"),
		}},
	}
	when := time.Date(2026, 11, 2, 15, 0, 0, 0, time.UTC)
	for _, s := range steps {
		for name, content := range s.files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
			t.Fatal(err)
		}
		sig := &object.Signature{Name: s.author, Email: strings.ToLower(strings.Fields(s.author)[0]) + "@msp.example", When: when}
		if _, err := wt.Commit(s.msg, &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
			t.Fatal(err)
		}
		when = when.Add(48 * time.Hour)
	}
	return dir
}

func TestHistoryCommand(t *testing.T) {
	dir := historyRepo(t)
	tests := []struct {
		golden string
		args   []string
	}{
		{"history.txt", nil},
		{"history.md", []string{"--format", "markdown"}},
		{"history-update.txt", []string{"--update", "KB5034441", "--client", "acme"}},
		{"history-since.txt", []string{"--since", "2026-11-05"}},
		{"history-other-client.txt", []string{"--client", "globex"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"history", "--repo", dir}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			golden.Check(t, filepath.Join("testdata", tt.golden), []byte(out))
		})
	}
}

func TestHistoryCommandErrors(t *testing.T) {
	dir := historyRepo(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"--format", "html"}, `unknown format "html"`},
		{"since not a date", []string{"--since", "last week"}, `--since: "last week": want a date`},
		{"not a git repository", []string{"--repo", t.TempDir()}, "is not inside a Git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"history", "--repo", dir}, tt.args...)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q, want it to contain %q", code, errOut, tt.want)
			}
		})
	}
}
