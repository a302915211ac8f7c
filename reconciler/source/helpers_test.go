package source

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// gitEnv is an environment for the git CLI that ignores the host's
// configuration and fixes the identity used for commits.
func gitEnv(t *testing.T) []string {
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

// runGit runs the git CLI in dir and returns its trimmed output.
func runGit(t *testing.T, env []string, dir string, args ...string) string {
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

// upstream is a bare fleet repo and a working clone that pushes to it.
type upstream struct {
	t    *testing.T
	env  []string
	bare string
	work string
	// first is the commit newUpstream made.
	first plumbing.Hash
}

// newUpstream makes base/fleet.git with one commit on main.
func newUpstream(t *testing.T, base string) *upstream {
	t.Helper()
	u := &upstream{t: t, env: gitEnv(t), bare: filepath.Join(base, "fleet.git"), work: t.TempDir()}
	runGit(t, u.env, base, "init", "--quiet", "--bare", "--initial-branch=main", u.bare)
	runGit(t, u.env, u.work, "init", "--quiet", "--initial-branch=main")
	runGit(t, u.env, u.work, "remote", "add", "origin", u.bare)
	u.first = u.commit("fleet.cue", "first policy")
	return u
}

// commit writes a file, commits it and pushes main; it returns the commit.
func (u *upstream) commit(file, msg string) plumbing.Hash {
	u.t.Helper()
	if err := os.WriteFile(filepath.Join(u.work, file), []byte(msg+"\n"), 0o644); err != nil {
		u.t.Fatal(err)
	}
	runGit(u.t, u.env, u.work, "add", file)
	runGit(u.t, u.env, u.work, "commit", "--quiet", "-m", msg)
	runGit(u.t, u.env, u.work, "push", "--quiet", "--force", "origin", "main")
	return plumbing.NewHash(runGit(u.t, u.env, u.work, "rev-parse", "HEAD"))
}

// forcePush moves the upstream main back to rev.
func (u *upstream) forcePush(rev plumbing.Hash) {
	u.t.Helper()
	runGit(u.t, u.env, u.work, "reset", "--quiet", "--hard", rev.String())
	runGit(u.t, u.env, u.work, "push", "--quiet", "--force", "origin", "main")
}

// startGitDaemon serves the repositories under base over git:// on
// loopback and returns the URL prefix, e.g. git://127.0.0.1:4711/.
func startGitDaemon(t *testing.T, base string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		skipOrFail(t, "git not installed: %v", err)
	}
	// Find a free port; git daemon binds it again with --reuseaddr.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "git", "daemon", "--verbose", "--export-all", "--reuseaddr",
		"--base-path="+base, "--listen=127.0.0.1", "--port="+strconv.Itoa(port), base)
	cmd.Env = gitEnv(t)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		skipOrFail(t, "git daemon: %v", err)
	}
	t.Cleanup(func() {
		cancel()
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
			skipOrFail(t, "git daemon exited before it was ready:\n%s", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("git daemon did not get ready within 10s")
	}
	return "git://127.0.0.1:" + strconv.Itoa(port) + "/"
}

// skipOrFail skips a test whose tool is missing, except in CI where a
// missing tool is a broken machine.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// next receives one event or fails after a generous deadline (a hang, not
// a timing assertion).
func next(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}
