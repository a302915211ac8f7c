package source

import (
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/gittest"
)

// gitEnv, runGit, startGitDaemon and skipOrFail are the shared test
// helpers of package gittest, under the names these tests grew up with.
func gitEnv(t *testing.T) []string { return gittest.Env(t) }

func runGit(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	return gittest.Run(t, env, dir, args...)
}

func startGitDaemon(t *testing.T, base string) string {
	t.Helper()
	return gittest.StartDaemon(t, base)
}

// upstream is a bare fleet repo and a working clone that pushes to it.
type upstream struct {
	*gittest.Upstream
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
	g := gittest.NewUpstream(t, base, "fleet")
	u := &upstream{Upstream: g, t: t, env: g.Env, bare: g.Bare, work: g.Work}
	u.first = u.commit("fleet.cue", "first policy")
	return u
}

// commit writes a file, commits it and pushes main; it returns the commit.
func (u *upstream) commit(file, msg string) plumbing.Hash {
	u.t.Helper()
	u.Write(map[string]string{file: msg + "\n"})
	return u.Commit(msg)
}

// forcePush moves the upstream main back to rev.
func (u *upstream) forcePush(rev plumbing.Hash) {
	u.t.Helper()
	u.ForcePush(rev)
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
