package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// DefaultInterval is how often [Source.Watch] polls when given no interval.
const DefaultInterval = time.Minute

// Event is what a watch reports: a head, or why it could not get one.
type Event struct {
	// Head is the branch head; zero when Err is set.
	Head plumbing.Hash
	// Err is the fetch or read failure, if any.
	Err error
}

// Watch fetches at once, then every interval (DefaultInterval when zero or
// less) and whenever trigger fires, and sends an Event each time the
// outcome differs from the one sent before: a new head, a different error,
// or a head again after an error. The channel is closed when ctx ends.
//
// The webhook handler should give trigger a buffer of one and send without
// blocking: a burst of pushes then becomes a single pending fetch. Triggers
// already queued when a fetch starts are folded into it; one that arrives
// during a fetch causes one more fetch, so a push is never missed.
func (s *Source) Watch(ctx context.Context, interval time.Duration, trigger <-chan struct{}) <-chan Event {
	if interval <= 0 {
		interval = DefaultInterval
	}
	out := make(chan Event)
	go func() {
		defer close(out)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		var last *Event
		for {
			head, _, err := s.Fetch(ctx)
			if ctx.Err() != nil {
				return
			}
			ev := Event{Head: head, Err: err}
			if !sameOutcome(last, ev) {
				select {
				case out <- ev:
					last = &ev
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			case <-trigger:
				drain(trigger)
			}
		}
	}()
	return out
}

// sameOutcome reports whether ev says nothing new after last.
func sameOutcome(last *Event, ev Event) bool {
	if last == nil {
		return false
	}
	if last.Err != nil || ev.Err != nil {
		return last.Err != nil && ev.Err != nil && last.Err.Error() == ev.Err.Error()
	}
	return last.Head == ev.Head
}

// drain empties c without blocking.
func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// WatchDir follows branch in the Git repository at dir (a working tree or
// a bare repository) for the controller's local mode. It sends the current
// head at once and then each new head after a commit, merge, reset or
// pull moves the branch, as fsnotify reports changes to the refs. Errors
// (the branch deleted, say) are sent once each, like [Source.Watch]. The
// channel is closed when ctx ends; setup failures are returned directly.
//
// Git updates a ref by writing a lock file and renaming it over the ref,
// and rewrites packed-refs the same way, so WatchDir watches directories
// rather than files and re-reads the branch after any change in them.
func WatchDir(ctx context.Context, dir, branch string) (<-chan Event, error) {
	if branch == "" {
		branch = DefaultBranch
	}
	if !validBranch(branch) {
		return nil, fmt.Errorf("watch %s: invalid branch name %q", dir, branch)
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	gitDir, err := findGitDir(dir)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	// The directories holding HEAD and packed-refs, and every directory on
	// the way from refs/heads to the branch's loose ref (branch names may
	// contain slashes).
	dirs := []string{gitDir, filepath.Join(gitDir, "refs"), filepath.Join(gitDir, "refs", "heads")}
	parts := strings.Split(branch, "/")
	for i := 1; i < len(parts); i++ {
		dirs = append(dirs, filepath.Join(gitDir, "refs", "heads", filepath.Join(parts[:i]...)))
	}
	if err := addWatches(w, dirs); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}

	ref := plumbing.NewBranchReferenceName(branch)
	read := func() Event {
		r, err := repo.Reference(ref, true)
		if err != nil {
			return Event{Err: fmt.Errorf("watch %s: branch %s: %w", dir, branch, err)}
		}
		return Event{Head: r.Hash()}
	}

	out := make(chan Event)
	go func() {
		defer close(out)
		defer w.Close()
		var last *Event
		for {
			ev := read()
			if !sameOutcome(last, ev) {
				select {
				case out <- ev:
					last = &ev
				case <-ctx.Done():
					return
				}
			}
			if !waitChange(ctx, w, dirs, &last) {
				return
			}
		}
	}()
	return out, nil
}

// waitChange blocks until the watcher reports a change and then takes in
// the events already queued, so one re-read covers a burst (a commit
// touches several files). A watcher error becomes the next outcome
// unless the re-read that follows succeeds. It returns false when ctx
// ends or the watcher closes.
func waitChange(ctx context.Context, w *fsnotify.Watcher, dirs []string, last **Event) bool {
	select {
	case <-ctx.Done():
		return false
	case _, ok := <-w.Events:
		if !ok {
			return false
		}
	case err, ok := <-w.Errors:
		if !ok {
			return false
		}
		// A dropped event (queue overflow) may hide a ref change; forget
		// the last outcome so the re-read is reported even if unchanged.
		if errors.Is(err, fsnotify.ErrEventOverflow) {
			*last = nil
		}
	}
	for {
		select {
		case _, ok := <-w.Events:
			if !ok {
				return false
			}
		default:
			// A directory on the branch path may have been created (first
			// commit on "release/x") or replaced; watching it again is a
			// no-op when it is already watched.
			_ = addWatches(w, dirs)
			return true
		}
	}
}

// addWatches adds each existing directory to w; directories that do not
// exist yet are skipped and retried after the next change.
func addWatches(w *fsnotify.Watcher, dirs []string) error {
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := w.Add(d); err != nil {
			return err
		}
	}
	return nil
}

// findGitDir returns the directory that holds HEAD and refs/: dir/.git for
// a working tree or dir itself for a bare repository. Linked worktrees and
// submodules (a .git file) keep their refs elsewhere and are refused.
func findGitDir(dir string) (string, error) {
	dotGit := filepath.Join(dir, ".git")
	fi, err := os.Stat(dotGit)
	switch {
	case err == nil && fi.IsDir():
		return dotGit, nil
	case err == nil:
		return "", fmt.Errorf("%s is a linked worktree or submodule; point at the main repository", dir)
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return "", fmt.Errorf("%s is not a Git repository", dir)
	}
	return dir, nil
}
