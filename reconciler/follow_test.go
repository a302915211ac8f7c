package reconciler

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/protocol"
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

// TestFollowRetriesAHeadTheStoreCouldNotRecord: a head the store cannot
// record (a full disk) is tried again with a growing backoff although no
// new event comes (a watch reports a head once), shown as pending with
// the store's error meanwhile, and applied once the store takes it.
func TestFollowRetriesAHeadTheStoreCouldNotRecord(t *testing.T) {
	r, up, st, _ := newRevisionsEnv(t)
	clk := r.clock.(*clock.Fake)
	first := up.Commit("Start the fleet")
	if err := r.apply(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	up.Write(map[string]string{"clients/acme/policy.cue": acmeApprovesCritical})
	second := up.Commit("Approve critical updates for acme")
	st.setFail(true)

	evs := make(chan source.Event, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.follow(ctx, func(ctx context.Context) (<-chan source.Event, error) { return evs, nil })
	}()
	// waitAttempts waits until n attempts failed and the next is armed.
	waitAttempts := func(n int) *protocol.PendingRevision {
		for {
			if p := r.view().pending; p != nil && p.Attempts == n && clk.Pending() > 0 {
				return p
			}
			runtime.Gosched()
		}
	}
	evs <- source.Event{Head: second}
	p := waitAttempts(1)
	if p.Revision != second.String() || !strings.Contains(p.Error, "could not record: database or disk is full") {
		t.Errorf("pending after the first attempt: %+v; want %s, could not record: the store's error", p, second)
	}
	for n, wait := range []time.Duration{retryBase, 2 * retryBase, 4 * retryBase} {
		if got := p.NextAttempt.Sub(clk.Now()); got != wait {
			t.Errorf("attempt %d: next in %v, want %v", n+1, got, wait)
		}
		clk.Advance(wait)
		p = waitAttempts(n + 2)
	}
	if got := running(r, "acme"); got != first.String() {
		t.Errorf("acme runs %s while the store fails, want %s", got, first)
	}
	st.setFail(false)
	clk.Advance(8 * retryBase)
	for r.view().pending != nil {
		runtime.Gosched()
	}
	if got := running(r, "acme"); got != second.String() {
		t.Errorf("acme runs %s once the store takes the head, want %s", got, second)
	}
	cancel()
	close(evs)
	<-done
}
