package reconciler

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/reconciler/feeds"
	"github.com/patchline/patchline/reconciler/metrics"
)

// feedKeeper owns the public vulnerability feeds the controller applies:
// it loads them from the feeds directory, fetches them itself when told to
// (Config.FeedsSync), reloads the directory (an air-gapped controller gets
// its feeds copied in by hand), and has every client re-planned when the
// data changes. A feed that fails keeps its last good copy in force.
type feedKeeper struct {
	dir     string
	sync    time.Duration
	fetch   feeds.FetchConfig
	clock   clock.Clock
	log     *slog.Logger
	metrics *metrics.Feeds
	// replanAll queues every client for a re-plan.
	replanAll func()

	// set is the feeds in force; swapped whole, read without a lock.
	set atomic.Pointer[feeds.Set]
}

// reloadInterval is how often the feeds directory is read again for files
// copied in by hand; unchanged files are not parsed again.
const reloadInterval = time.Minute

// Feeds returns the feeds in force (nil when no directory is configured).
func (k *feedKeeper) Feeds() *feeds.Set {
	if k == nil {
		return nil
	}
	return k.set.Load()
}

// load reads the feeds directory and puts what parsed in force.
func (k *feedKeeper) load(ctx context.Context) {
	next, errs := k.set.Load().Reload(ctx, k.dir)
	for _, err := range errs {
		k.failed(err)
	}
	for _, f := range feeds.All {
		for _, file := range next.Files(f) {
			k.metrics.Succeeded(string(f), file.ModTime)
		}
	}
	if prev := k.set.Swap(next); prev != nil && !sameFiles(prev, next) {
		k.log.Info("vulnerability feeds changed; re-planning every client", "dir", k.dir)
		k.replanAll()
	}
}

// failed logs and counts one feed's failure.
func (k *feedKeeper) failed(err error) {
	feed := "unknown"
	var pe *feeds.ParseError
	if errors.As(err, &pe) {
		if f, ok := feeds.FeedOf(filepath.Base(pe.File)); ok {
			feed = string(f)
		}
	}
	k.metrics.Failed(feed)
	k.log.Error("vulnerability feed refused; its last good copy stays in force", "feed", feed, "err", err)
}

// run reloads the directory every reloadInterval and, with a sync
// interval, fetches the feeds first, until ctx ends.
func (k *feedKeeper) run(ctx context.Context) {
	var lastFetch time.Time
	for {
		if k.sync > 0 && (lastFetch.IsZero() || k.clock.Now().Sub(lastFetch) >= k.sync) {
			lastFetch = k.clock.Now()
			k.fetchNow(ctx)
		}
		k.load(ctx)
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(reloadInterval):
		}
	}
}

// fetchNow downloads the feeds into the directory and records each feed's
// outcome.
func (k *feedKeeper) fetchNow(ctx context.Context) {
	rep, err := feeds.Fetch(ctx, k.fetch, k.dir)
	if err != nil && ctx.Err() == nil {
		k.log.Error("fetch vulnerability feeds", "dir", k.dir, "err", err)
	}
	for _, f := range rep.Feeds() {
		switch f.Outcome {
		case feeds.OutcomeOK, feeds.OutcomeUnchanged:
			k.metrics.Succeeded(string(f.Feed), f.At)
		default:
			k.metrics.Failed(string(f.Feed))
		}
	}
	for _, f := range rep.Files {
		if f.Err != nil {
			k.log.Error("fetch vulnerability feed; its last good copy stays in force", "feed", f.Feed, "url", f.URL, "err", f.Err)
		}
	}
}

// sameFiles reports whether a and b hold the same feed files.
func sameFiles(a, b *feeds.Set) bool {
	for _, f := range feeds.All {
		if !slices.EqualFunc(a.Files(f), b.Files(f), func(x, y feeds.File) bool {
			return x.Name == y.Name && x.Size == y.Size && x.ModTime.Equal(y.ModTime)
		}) {
			return false
		}
	}
	return true
}
