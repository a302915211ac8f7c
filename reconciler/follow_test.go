package reconciler

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/reconciler/source"
)

// TestFollowRetriesASourceThatCannotStart: a fleet repo that cannot be
// followed yet (a local repo not there) is tried again after a backoff,
// with the error in the status meanwhile, and followed once it can be.
func TestFollowRetriesASourceThatCannotStart(t *testing.T) {
	r, up, _, _ := newRevisionsEnv(t)
	clk := r.clock.(*clock.Fake)
	head := up.Commit("Start the fleet")
	starts := make(chan int, 10)
	n := 0
	evs := make(chan source.Event, 1)
	follower := func(ctx context.Context) (<-chan source.Event, error) {
		n++
		starts <- n
		if n < 3 {
			return nil, errors.New("watch /srv/fleet: no such file or directory")
		}
		return evs, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.follow(ctx, follower)
	}()
	waitArmed := func() {
		for clk.Pending() == 0 {
			runtime.Gosched()
		}
	}
	<-starts
	waitArmed()
	if v := r.view(); !strings.Contains(v.lastErr, "no such file") {
		t.Errorf("status while the repo cannot be followed: %q", v.lastErr)
	}
	clk.Advance(retryBase)
	<-starts
	waitArmed()
	clk.Advance(2 * retryBase)
	<-starts
	evs <- source.Event{Head: head}
	close(evs)
	// The follower's channel closed: following starts again after a
	// backoff, once the head was applied.
	waitArmed()
	if got := running(r, "acme"); got != head.String() {
		t.Errorf("acme runs %q once the repo could be followed, want %s", got, head)
	}
	cancel()
	<-done
}
