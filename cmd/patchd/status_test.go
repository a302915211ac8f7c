package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/reconciler/commitstatus"
)

func TestStatusFlags(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "status-token")
	if err := os.WriteFile(token, []byte("ghp_status\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := []string{"--repo", "file:///x"}
	tests := []struct {
		name    string
		args    []string
		want    commitstatus.Config
		wantErr string
	}{
		{name: "off by default", args: repo},
		{name: "GitHub", args: []string{"--status-provider", "github", "--status-repo", "msp/fleet", "--status-token-file", token},
			want: commitstatus.Config{Provider: commitstatus.GitHub, Repo: "msp/fleet", Token: "ghp_status"}},
		{name: "GitLab by project path", args: []string{"--status-provider", "gitlab", "--status-api", "https://gitlab.msp.example/api/v4", "--status-repo", "msp/infra/fleet", "--status-token-file", token},
			want: commitstatus.Config{Provider: commitstatus.GitLab, API: "https://gitlab.msp.example/api/v4", Repo: "msp/infra/fleet", Token: "ghp_status"}},
		{name: "Gitea", args: []string{"--status-provider", "gitea", "--status-api", "https://gitea.msp.example/api/v1", "--status-repo", "msp/fleet", "--status-token-file", token},
			want: commitstatus.Config{Provider: commitstatus.Gitea, API: "https://gitea.msp.example/api/v1", Repo: "msp/fleet", Token: "ghp_status"}},
		{name: "unknown provider", args: []string{"--status-provider", "bitbucket", "--status-repo", "msp/fleet", "--status-token-file", token},
			wantErr: `--status-provider "bitbucket": want github, gitlab or gitea`},
		{name: "no repo", args: []string{"--status-provider", "github", "--status-token-file", token}, wantErr: "needs --status-repo OWNER/NAME"},
		{name: "no token file", args: []string{"--status-provider", "github", "--status-repo", "msp/fleet"}, wantErr: "needs --status-token-file FILE"},
		{name: "a missing token file", args: []string{"--status-provider", "github", "--status-repo", "msp/fleet", "--status-token-file", filepath.Join(dir, "nope")},
			wantErr: "--status-token-file: open"},
		{name: "an empty token file", args: []string{"--status-provider", "github", "--status-repo", "msp/fleet", "--status-token-file", empty}, wantErr: "is empty"},
		{name: "Gitea without its API", args: []string{"--status-provider", "gitea", "--status-repo", "msp/fleet", "--status-token-file", token}, wantErr: "needs --status-api URL"},
		{name: "the token in clear", args: []string{"--status-provider", "github", "--status-api", "http://github.msp.example/api/v3", "--status-repo", "msp/fleet", "--status-token-file", token},
			wantErr: "plain http would send the token in clear"},
		{name: "status flags without a provider", args: []string{"--status-repo", "msp/fleet"}, wantErr: "used only with --status-provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseFlags(append(slices.Clone(repo), tt.args...), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "ghp_status") {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, cfg.Status); diff != "" {
				t.Errorf("status config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestREADMECommitStatusExample runs the patchd command of README's
// "Commit statuses" section through patchd's flags, with its files made
// in a temp dir: it must configure GitHub statuses for msp/fleet.
func TestREADMECommitStatusExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Commit statuses\n")
	if !ok {
		t.Fatal(`README.md has no "### Commit statuses" section`)
	}
	section, _, _ = strings.Cut(section, "\n### ")
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the Commit statuses section has no sh block")
	}
	args := strings.Fields(strings.ReplaceAll(m[1], "\\\n", " "))
	if len(args) < 2 || args[0] != "patchd" || args[1] != "serve" {
		t.Fatalf("the example is not a patchd serve command: %q", m[1])
	}
	dir := t.TempDir()
	for i, a := range args {
		if strings.HasPrefix(a, "/etc/patchline/") {
			args[i] = filepath.Join(dir, filepath.Base(a))
			if err := os.WriteFile(args[i], []byte("token-from-"+filepath.Base(a)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg, _, err := parseFlags(args[2:], io.Discard)
	if err != nil {
		t.Fatalf("README's command: %v", err)
	}
	want := commitstatus.Config{Provider: commitstatus.GitHub, Repo: "msp/fleet", Token: "token-from-status-token"}
	if diff := cmp.Diff(want, cfg.Status); diff != "" {
		t.Errorf("README's command configures (-want +got):\n%s", diff)
	}
}
