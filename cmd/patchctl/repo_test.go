package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/patchline/patchline/schema"
)

// TestRepoCommandsFromASubdirectory: every command that works on the
// fleet repository, run from clients/acme with its default directory,
// does what it does at the top: the working tree and Git revisions,
// history, schema update.
func TestRepoCommandsFromASubdirectory(t *testing.T) {
	top := t.TempDir()
	if _, err := git.PlainInit(top, false); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/fleet", top)
	commitAll(t, top, "Acme and Globex policy", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	state, err := filepath.Abs("../../examples/state.json")
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(t.TempDir(), "fleet.git")
	if _, err := git.PlainClone(bare, true, &git.CloneOptions{URL: top}); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(top, "clients", "acme")
	t.Chdir(sub)

	tests := []struct {
		name string
		// args run in clients/acme; atTop are the same at the top.
		args, atTop []string
	}{
		{"vet the working tree", []string{"vet", "--now", now}, []string{"vet", top, "--now", now}},
		{"vet a revision", []string{"vet", "--rev", "HEAD", "--now", now}, []string{"vet", top, "--rev", "HEAD", "--now", now}},
		{"plan the working tree", []string{"plan", "--state", state, "--now", now}, []string{"plan", "--repo", top, "--state", state, "--now", now}},
		{"plan a revision against its base", []string{"plan", "--rev", "HEAD", "--base", "HEAD", "--state", state, "--now", now},
			[]string{"plan", "--repo", top, "--rev", "HEAD", "--base", "HEAD", "--state", state, "--now", now}},
		{"why at a revision, with blame", []string{"why", "--rev", "HEAD", "--state", state, "--now", now, "--endpoint", "acme-ws-002", "--update", "KB5034441"},
			[]string{"why", "--repo", top, "--rev", "HEAD", "--state", state, "--now", now, "--endpoint", "acme-ws-002", "--update", "KB5034441"}},
		{"why in the working tree", []string{"why", "--repo", "..", "--state", state, "--now", now, "--endpoint", "acme-ws-002", "--update", "KB5034441"},
			[]string{"why", "--repo", top, "--state", state, "--now", now, "--endpoint", "acme-ws-002", "--update", "KB5034441"}},
		{"history", []string{"history"}, []string{"history", "--repo", top}},
		{"history of a bare repository", []string{"history", "--repo", bare}, []string{"history", "--repo", top}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("%s in clients/acme: exit %d: %s", tt.args, code, errOut)
			}
			wcode, want, wantErr := run(t, tt.atTop...)
			if wcode != 0 {
				t.Fatalf("%s: exit %d: %s", tt.atTop, wcode, wantErr)
			}
			if out != want {
				t.Errorf("%s in clients/acme printed:\n%s\nat the top:\n%s", tt.args, out, want)
			}
		})
	}

	t.Run("schema update writes at the top", func(t *testing.T) {
		if code, out, errOut := run(t, "schema", "update"); code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(top, filepath.FromSlash(schema.PackageFile))); err != nil {
			t.Errorf("the schema is not at the top: %v", err)
		}
		if _, err := os.Stat(filepath.Join(sub, "cue.mod")); !os.IsNotExist(err) {
			t.Errorf("schema update wrote into clients/acme: %v", err)
		}
	})
}

func TestRepoDirErrors(t *testing.T) {
	plain := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a revision outside any repository", []string{"plan", "--repo", plain, "--rev", "HEAD", "--state", "../../examples/state.json"},
			"is not inside a Git repository (nor is any parent directory)"},
		{"history outside any repository", []string{"history", "--repo", plain}, "is not inside a Git repository"},
		{"a directory that does not exist", []string{"history", "--repo", filepath.Join(plain, "nowhere")}, "nowhere: no such file or directory"},
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
