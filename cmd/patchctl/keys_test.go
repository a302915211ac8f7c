package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
)

// TestKeysGenerate: patchctl keys generate writes a key patchd loads,
// readable by its owner only, prints its fingerprint, and never writes
// over a file.
func TestKeysGenerate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "job-signing-key.pem")
	code, stdout, errOut := run(t, "keys", "generate", "--out", out)
	if code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut)
	}
	key, err := signingkey.Load(out)
	if err != nil {
		t.Fatalf("the key written does not load: %v", err)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	want := "job-signing key written to " + out + " (mode 0600), public key " + signingkey.Fingerprint(key.Public().(ed25519.PublicKey)) + "\n"
	if stdout != want {
		t.Errorf("output %q, want %q", stdout, want)
	}
	before, _ := os.ReadFile(out)
	if code, _, errOut := run(t, "keys", "generate", "--out", out); code == 0 || !strings.Contains(errOut, "a job-signing key is never replaced") {
		t.Errorf("generate over an existing key: exit %d, %q; want a refusal", code, errOut)
	}
	if after, _ := os.ReadFile(out); string(before) != string(after) {
		t.Error("the existing key was replaced")
	}
	if code, _, errOut := run(t, "keys", "generate"); code == 0 || !strings.Contains(errOut, "--out FILE is required") {
		t.Errorf("generate without --out: exit %d, %q", code, errOut)
	}
}

// TestREADMEKeysGenerate runs the patchctl command of the README's
// "Running on PostgreSQL" section as written, but for the directory: the
// key it makes is one patchd loads.
func TestREADMEKeysGenerate(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n### Running on PostgreSQL\n")
	if start < 0 {
		t.Fatal(`README.md has no "### Running on PostgreSQL" section`)
	}
	section := readme[start+1:]
	section = section[:strings.Index(section[1:], "\n#")+1]
	var cmds [][]string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "patchctl ") {
			cmds = append(cmds, strings.Fields(line)[1:])
		}
	}
	if len(cmds) != 1 || strings.Join(cmds[0][:2], " ") != "keys generate" {
		t.Fatalf("README's patchctl commands: %q, want keys generate alone", cmds)
	}
	dir := t.TempDir()
	args := make([]string, len(cmds[0]))
	for i, a := range cmds[0] {
		args[i] = strings.ReplaceAll(a, "/etc/patchline/", dir+"/")
	}
	if code, _, errOut := run(t, args...); code != 0 {
		t.Fatalf("patchctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if _, err := signingkey.Load(filepath.Join(dir, "job-signing-key.pem")); err != nil {
		t.Errorf("the README's key does not load: %v", err)
	}
}

// TestBackupOnPostgreSQL: patchctl backup against a patchd that keeps its
// store in PostgreSQL saves nothing and says what to back up instead.
func TestBackupOnPostgreSQL(t *testing.T) {
	repo := t.TempDir()
	if _, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/demo/fleet", repo)
	commitAll(t, repo, "Demo fleet", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := patchdtest.Config(t, repo, nil)
	cfg.Database, cfg.SigningKey = pgtest.DB(t), key
	url := patchdtest.Start(t, cfg).URL
	token := writeToken(t, patchdtest.AdminToken)

	out := filepath.Join(t.TempDir(), "patchline.db")
	code, stdout, errOut := run(t, "backup", "--controller", url, "--token-file", token, "--out", out)
	if code == 0 {
		t.Fatalf("backup of a PostgreSQL store: exit 0, %q", stdout)
	}
	for _, want := range []string{"no backup made, " + out + " is unchanged", "400", "pg_dump", "point-in-time recovery",
		"endpoints, updates, first_seen, jobs, attempts, revisions, halts, audit, tokens, controller, leader, schema_migrations", "--signing-key"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("backup's message %q does not say %q", errOut, want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("backup left %s (%v)", out, err)
	}
	if entries, err := os.ReadDir(filepath.Dir(out)); err != nil || len(entries) != 0 {
		t.Errorf("files left beside the backup: %v, %v", entries, err)
	}
}
