package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/proctest"
)

// addRunaway writes client evil with proctest.RunawayPolicy into the fleet in dir
// and, when dir is a Git repository, commits it.
func addRunaway(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "clients", "evil", "policy.cue")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(proctest.RunawayPolicy("evil")), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Eve Intruder", Email: "eve@msp.example", When: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	if _, err := wt.Commit("Add client evil", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
}

// TestCommandsUnderEvaluationLimits: every command that loads a fleet
// evaluates it under patchd's limits, so a runaway client is refused in
// seconds instead of hanging CI. The fleet holds the runaway alone: in a
// race-detector build a healthy client takes about as long as the short
// deadline.
func TestCommandsUnderEvaluationLimits(t *testing.T) {
	fleet := t.TempDir()
	if err := os.CopyFS(fleet, os.DirFS("../../schema/loader/testdata/fleets/no-clients")); err != nil {
		t.Fatal(err)
	}
	addRunaway(t, fleet)
	repo := historyRepo(t)
	addRunaway(t, repo)
	tests := []struct {
		name string
		args []string
		code int
		want string
		// linux: the limit is watched on Linux only.
		linux bool
	}{
		{name: "vet past the deadline", args: []string{"vet", fleet, "--now", now, "--eval-timeout", "1s"}, code: 1,
			want: "clients/evil/policy.cue:1:1: evaluation exceeded 1s; simplify comprehensions and disjunctions"},
		{name: "vet above the memory limit", args: []string{"vet", fleet, "--now", now, "--eval-memory", "64MiB"}, code: 1,
			want: "clients/evil/policy.cue:1:1: evaluation exceeded 64 MiB; simplify comprehensions and large lists", linux: true},
		{name: "plan", args: []string{"plan", "--repo", fleet, "--state", "../../examples/state.json", "--now", now, "--eval-timeout", "1s"}, code: 1,
			want: "has 1 error(s); run patchctl vet:\nclients/evil/policy.cue:1:1: evaluation exceeded 1s"},
		{name: "why", args: []string{"why", "--repo", fleet, "--state", "../../examples/state.json", "--now", now, "--endpoint", "acme-ws-001", "--update", "KB5034441", "--eval-timeout", "1s"}, code: 1,
			want: "clients/evil/policy.cue:1:1: evaluation exceeded 1s"},
		{name: "history", args: []string{"history", "--repo", repo, "--eval-timeout", "1s"}, code: 0,
			want: "! refused by the controller: clients/evil/policy.cue:1:1: evaluation exceeded 1s"},
		{name: "a deadline of zero", args: []string{"vet", fleet, "--eval-timeout", "0s"}, code: 1, want: "--eval-timeout 0s: must be positive"},
		{name: "a memory limit without a unit we know", args: []string{"vet", fleet, "--eval-memory", "1GB"}, code: 1, want: "invalid amount of memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.linux && runtime.GOOS != "linux" {
				t.Skip("resident memory is watched on Linux only")
			}
			start := time.Now()
			code, out, errOut := run(t, tt.args...)
			took := time.Since(start)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, output:\n%s%s\nwant exit %d and %q", code, out, errOut, tt.code, tt.want)
			}
			// The default deadline is 10s: a command that took that long
			// did not apply the limit it was given.
			if took > 9*time.Second {
				t.Errorf("took %v", took)
			}
			proctest.NoChildLeft(t)
		})
	}
}
