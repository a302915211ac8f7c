package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// wantHead fails unless ev carries head.
func wantHead(t *testing.T, ev Event, head plumbing.Hash) {
	t.Helper()
	if ev.Err != nil || ev.Head != head {
		t.Fatalf("event = {%s, %v}, want head %s", ev.Head, ev.Err, head)
	}
}

func TestWatchFetchesWhenTriggered(t *testing.T) {
	base := t.TempDir()
	up := newUpstream(t, base)
	s, err := New(Config{URL: filepath.Join(base, "fleet.git"), Dir: filepath.Join(t.TempDir(), "clone")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// An interval far beyond the test: only the trigger can cause fetches.
	trigger := make(chan struct{}, 1)
	events := s.Watch(ctx, time.Hour, trigger)
	wantHead(t, next(t, events), up.first)

	second := up.commit("acme.cue", "add acme")
	trigger <- struct{}{}
	wantHead(t, next(t, events), second)

	// A burst of webhooks for one push: all fold into fetches that find
	// nothing new, so no event; the next push is reported exactly once.
	for range 5 {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	third := up.commit("globex.cue", "add globex")
	trigger <- struct{}{}
	wantHead(t, next(t, events), third)

	cancel()
	for range events {
		t.Error("event after cancel")
	}
}

func TestWatchPollsAndRecovers(t *testing.T) {
	base := t.TempDir()
	s, err := New(Config{URL: filepath.Join(base, "fleet.git"), Dir: filepath.Join(t.TempDir(), "clone")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := s.Watch(ctx, 10*time.Millisecond, nil)

	// The repo does not exist yet: one error, not one per poll.
	ev := next(t, events)
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "fleet.git") {
		t.Fatalf("first event = {%s, %v}, want a fetch error naming the repo", ev.Head, ev.Err)
	}
	// Polls during the repo's creation may see other errors first.
	up := newUpstream(t, base)
	awaitHead(t, events, up.first)
	second := up.commit("acme.cue", "add acme")
	wantHead(t, next(t, events), second)
}

// awaitHead receives events until one carries head; errors and other
// heads on the way (a poll that saw the repo half made) are passed over.
func awaitHead(t *testing.T, events <-chan Event, head plumbing.Hash) {
	t.Helper()
	for {
		if ev := next(t, events); ev.Err == nil && ev.Head == head {
			return
		}
	}
}

func TestWatchDir(t *testing.T) {
	tests := []struct {
		name   string
		branch string
		// move changes the repository and returns the head to expect.
		move func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash
	}{
		{"commit on main", "main", func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash {
			return r.commit("acme.cue", "add acme")
		}},
		{"reset to an older commit", "main", func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash {
			c := r.commit("acme.cue", "add acme")
			wantHead(t, next(t, events), c)
			r.git("reset", "--quiet", "--hard", "HEAD~1")
			return r.first
		}},
		{"commit after refs were packed", "main", func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash {
			r.git("pack-refs", "--all")
			return r.commit("acme.cue", "add acme")
		}},
		{"branch with a slash created later", "release/2025-q3", func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash {
			r.git("checkout", "--quiet", "-b", "release/2025-q3")
			wantHead(t, next(t, events), r.first)
			return r.commit("acme.cue", "release acme")
		}},
		{"commit on another branch is ignored", "main", func(t *testing.T, r *localRepo, events <-chan Event) plumbing.Hash {
			r.git("checkout", "--quiet", "-b", "draft")
			r.commit("draft.cue", "draft")
			r.git("checkout", "--quiet", "main")
			return r.commit("acme.cue", "add acme")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLocalRepo(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			events, err := WatchDir(ctx, r.dir, tt.branch)
			if err != nil {
				t.Fatal(err)
			}
			first := next(t, events)
			if tt.branch == "main" {
				wantHead(t, first, r.first)
			} else if first.Err == nil {
				t.Fatalf("first event for a missing branch = %s, want an error", first.Head)
			}
			want := tt.move(t, r, events)
			wantHead(t, next(t, events), want)
		})
	}
}

func TestWatchDirRefusesNonRepo(t *testing.T) {
	if _, err := WatchDir(context.Background(), t.TempDir(), "main"); err == nil {
		t.Fatal("WatchDir on an empty directory succeeded")
	}
	r := newLocalRepo(t)
	if _, err := WatchDir(context.Background(), r.dir, "bad..name"); err == nil {
		t.Fatal("WatchDir with an invalid branch succeeded")
	}
}

// localRepo is a working repository a technician commits to directly.
type localRepo struct {
	t     *testing.T
	env   []string
	dir   string
	first plumbing.Hash
}

func newLocalRepo(t *testing.T) *localRepo {
	t.Helper()
	r := &localRepo{t: t, env: gitEnv(t), dir: t.TempDir()}
	r.git("init", "--quiet", "--initial-branch=main")
	r.first = r.commit("fleet.cue", "first policy")
	return r
}

func (r *localRepo) git(args ...string) string {
	r.t.Helper()
	return runGit(r.t, r.env, r.dir, args...)
}

func (r *localRepo) commit(file, msg string) plumbing.Hash {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, file), []byte(msg+"\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.git("add", file)
	r.git("commit", "--quiet", "-m", msg)
	return r.head()
}

func (r *localRepo) head() plumbing.Hash {
	r.t.Helper()
	return plumbing.NewHash(r.git("rev-parse", "HEAD"))
}
