package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// names lists a directory's entries ("" for none, "absent" when it does
// not exist).
func names(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return strings.Join(n, " ")
}

// TestInitLeavesNothingBehind: an init that fails, wherever it fails,
// leaves the directory as it was (absent, or empty) and creates nothing
// beside it, so that running it again works; one that succeeds leaves the
// repository alone in the directory.
func TestInitLeavesNothingBehind(t *testing.T) {
	const author = "Tess Technician <tess@msp.example>"
	// A layout whose last file cannot be read: init fails after writing
	// the others.
	broken := t.TempDir()
	copyDir(t, "../../examples/demo/fleet", broken)
	if err := os.Symlink(filepath.Join(broken, "nowhere"), filepath.Join(broken, "zz-gone.cue")); err != nil {
		t.Fatal(err)
	}
	// No git config with an author: the commit, the last step, fails.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	noAuthor := true
	for _, scope := range []config.Scope{config.GlobalScope, config.SystemScope} {
		if c, err := config.LoadConfig(scope); err == nil && (c.User.Name != "" || c.Author.Name != "") {
			noAuthor = false
		}
	}

	tests := []struct {
		name string
		// dir is where init is asked to lay the repository, under the
		// test's directory; existing makes it first, empty.
		dir      string
		existing bool
		args     []string
		want     string // in the error
	}{
		{name: "an unreadable file, new directory", dir: "fleet", args: []string{"--from", broken, "--author", author}, want: "zz-gone.cue"},
		{name: "an unreadable file, new parents too", dir: "msp/fleets/acme", args: []string{"--from", broken, "--author", author}, want: "zz-gone.cue"},
		{name: "an unreadable file, existing empty directory", dir: "fleet", existing: true, args: []string{"--from", broken, "--author", author}, want: "zz-gone.cue"},
		{name: "no author, new directory", dir: "fleet", want: "no author"},
		{name: "no author, existing empty directory", dir: "fleet", existing: true, want: "no author"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.args) == 0 && !noAuthor {
				t.Skip("SKIPPING: the system's git config names an author, so a commit without one cannot be made to fail")
			}
			root := t.TempDir()
			dir := filepath.Join(root, filepath.FromSlash(tt.dir))
			if tt.existing {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			before := names(t, root)
			code, _, errOut := run(t, append([]string{"init", dir}, tt.args...)...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("init: exit %d, stderr %q; want an error about %q", code, errOut, tt.want)
			}
			if got := names(t, root); got != before {
				t.Errorf("after the failed init, %s holds %q, want %q", root, got, before)
			}
			if tt.existing {
				if got := names(t, dir); got != "" {
					t.Errorf("after the failed init, %s holds %q, want it empty", dir, got)
				}
			}
			code, _, errOut = run(t, "init", dir, "--from", "../../examples/demo/fleet", "--author", author)
			if code != 0 {
				t.Fatalf("init again: exit %d: %s", code, errOut)
			}
			entries := names(t, dir)
			if strings.Contains(entries, "patchctl-init") || !slices.Contains(strings.Fields(entries), ".git") {
				t.Errorf("%s holds %q", dir, entries)
			}
			if got := names(t, filepath.Dir(dir)); strings.Contains(got, "patchctl-init") {
				t.Errorf("init left %q beside %s", got, dir)
			}
			repo, err := git.PlainOpen(dir)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := mustWorktreeStatus(t, repo); err != nil || !st.IsClean() {
				t.Errorf("the new repository's working tree: %v %v", st, err)
			}
			if code, _, errOut := run(t, "vet", dir, "--rev", "main"); code != 0 {
				t.Errorf("vet of the new repository at main: exit %d: %s", code, errOut)
			}
		})
	}

	t.Run("a directory that is not empty is left alone", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := run(t, "init", dir, "--author", author)
		if code == 0 || !strings.Contains(errOut, "is not empty") {
			t.Errorf("init into a non-empty directory: exit %d, %q", code, errOut)
		}
		if got := names(t, dir); got != "notes.txt" {
			t.Errorf("the directory holds %q, want notes.txt alone", got)
		}
	})
}

func mustWorktreeStatus(t *testing.T, repo *git.Repository) (git.Status, error) {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		return nil, err
	}
	return wt.Status()
}
