// Package gittest gives tests real Git: the git CLI with a clean
// configuration, an upstream bare repository with a working clone that
// pushes to it, and a git daemon serving it over git:// on loopback. It is
// for tests only; the product never shells out to git.
package gittest

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing"
)

// Env is an environment for the git CLI that ignores the host's
// configuration and fixes the identity used for commits.
func Env(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	return append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+filepath.Join(home, "gitconfig"),
		"GIT_AUTHOR_NAME=Test Technician",
		"GIT_AUTHOR_EMAIL=tech@example.com",
		"GIT_COMMITTER_NAME=Test Technician",
		"GIT_COMMITTER_EMAIL=tech@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// Run runs the git CLI in dir and returns its trimmed output.
func Run(t testing.TB, env []string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Upstream is a bare repository (Bare) and a working clone (Work) that
// pushes its main branch to it.
type Upstream struct {
	t    testing.TB
	Env  []string
	Bare string
	Work string
}

// NewUpstream makes base/<name>.git, empty, and a clone to commit in.
func NewUpstream(t testing.TB, base, name string) *Upstream {
	t.Helper()
	RequireGit(t)
	u := &Upstream{t: t, Env: Env(t), Bare: filepath.Join(base, name+".git"), Work: t.TempDir()}
	Run(t, u.Env, base, "init", "--quiet", "--bare", "--initial-branch=main", u.Bare)
	Run(t, u.Env, u.Work, "init", "--quiet", "--initial-branch=main")
	Run(t, u.Env, u.Work, "remote", "add", "origin", u.Bare)
	return u
}

// Write writes files (slash-separated path → content) into the clone.
func (u *Upstream) Write(files map[string]string) {
	u.t.Helper()
	for name, content := range files {
		p := filepath.Join(u.Work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
}

// CopyDir copies the directory tree src into the clone.
func (u *Upstream) CopyDir(src string) {
	u.t.Helper()
	files := make(map[string]string)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		u.t.Fatal(err)
	}
	u.Write(files)
}

// Commit commits everything in the clone, pushes main and returns the
// commit.
func (u *Upstream) Commit(msg string) plumbing.Hash {
	u.t.Helper()
	Run(u.t, u.Env, u.Work, "add", "--all")
	Run(u.t, u.Env, u.Work, "commit", "--quiet", "--allow-empty", "-m", msg)
	Run(u.t, u.Env, u.Work, "push", "--quiet", "--force", "origin", "main")
	return plumbing.NewHash(Run(u.t, u.Env, u.Work, "rev-parse", "HEAD"))
}

// ForcePush moves main, in the clone and upstream, back to rev.
func (u *Upstream) ForcePush(rev plumbing.Hash) {
	u.t.Helper()
	Run(u.t, u.Env, u.Work, "reset", "--quiet", "--hard", rev.String())
	Run(u.t, u.Env, u.Work, "push", "--quiet", "--force", "origin", "main")
}

// RequireGit fails (in CI) or skips (elsewhere) a test when git is missing.
func RequireGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		SkipOrFail(t, "git not installed: %v", err)
	}
}

// StartDaemon serves the repositories under base over git:// on loopback
// until the test ends and returns the URL prefix, e.g.
// git://127.0.0.1:4711/.
//
// It runs git-daemon itself rather than "git daemon": the git command
// forks the daemon as a child of its own, and killing it would leave the
// daemon running. The daemon runs in a process group of its own, with the
// child it forks for each connection, and the end of the test kills the
// whole group and waits for the daemon.
func StartDaemon(t testing.TB, base string) string {
	t.Helper()
	RequireGit(t)
	env := Env(t)
	daemon := filepath.Join(Run(t, env, base, "--exec-path"), "git-daemon")
	// Find a free port; git daemon binds it again with --reuseaddr.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cmd := exec.Command(daemon, "--verbose", "--export-all", "--reuseaddr",
		"--base-path="+base, "--listen=127.0.0.1", "--port="+strconv.Itoa(port), base)
	cmd.Env = env
	ownProcessGroup(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		SkipOrFail(t, "git daemon: %v", err)
	}
	t.Cleanup(func() {
		if err := killProcessGroup(cmd); err != nil {
			t.Errorf("stop git daemon: %v", err)
		}
		// Wait reaps the daemon and closes the pipe, which ends the
		// reader below.
		_ = cmd.Wait()
	})

	// git daemon says "Ready to rumble" once it listens; read until then
	// instead of polling the port. Keep draining afterwards so the daemon
	// never blocks on a full pipe.
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var log strings.Builder
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "Ready to rumble") {
				signalled = true
				ready <- ""
			}
		}
		if !signalled {
			ready <- log.String()
		}
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			SkipOrFail(t, "git daemon exited before it was ready:\n%s", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("git daemon did not get ready within 10s")
	}
	return "git://127.0.0.1:" + strconv.Itoa(port) + "/"
}

// SkipOrFail skips a test whose tool is missing, except in CI where a
// missing tool is a broken machine.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIPPED, tool missing (this fails under CI=true): "+format, args...)
}

// SigningKey makes an Ed25519 OpenPGP key (fast to generate) for the
// identity "name <email>", and its armored public key, for commits go-git
// signs with CommitOptions.SignKey. A signed commit counts only when its
// committer's email is the key's.
func SigningKey(t testing.TB, name, email string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, buf.String()
}
