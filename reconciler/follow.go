package reconciler

import (
	"context"
	"errors"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/reconciler/source"
)

// follower produces the branch heads of the fleet repo, each time it may
// have moved, until ctx ends.
type follower func(ctx context.Context) (<-chan source.Event, error)

// follow applies each new head the follower reports until ctx ends. A
// follower that cannot start (a local repo not there yet, a watch limit
// reached) or that stops is started again after a backoff, with its error
// in /v1/status meanwhile: the controller never stops following.
func (r *revisions) follow(ctx context.Context, start follower) {
	failures := 0
	for {
		evs, err := start(ctx)
		if err == nil {
			if r.applyEach(ctx, evs) {
				failures = 0
			}
			if ctx.Err() != nil {
				return
			}
			err = errors.New("following the fleet repo stopped")
		}
		failures++
		r.setLastErr(err)
		d := backoff(failures)
		r.log.Error("cannot follow the fleet repo; trying again", "err", err, "retry_in", d)
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(d):
		}
	}
}

// applyEach applies each head evs reports until evs closes, and reports
// whether evs reported anything. A head that cannot be applied yet (the
// store cannot record it, say on a full disk) is tried again with a
// backoff, shown as pending in /v1/status meanwhile, until it is applied
// or refused or a newer head replaces it: a watch reports a head only
// when it moves, so no later event would bring it back.
func (r *revisions) applyEach(ctx context.Context, evs <-chan source.Event) (got bool) {
	var (
		head     plumbing.Hash
		attempts int
		// retry fires when the pending head is due again; nil when none
		// is pending.
		retry <-chan time.Time
	)
	try := func() {
		err := r.apply(ctx, head)
		if err == nil || ctx.Err() != nil {
			retry = nil
			return
		}
		attempts++
		d := backoff(attempts)
		r.setPending(head, err, attempts, r.clock.Now().Add(d))
		r.log.Error("cannot apply fleet revision; keeping the applied policy and trying again", "revision", head.String(), "err", err, "attempts", attempts, "retry_in", d)
		retry = r.clock.After(d)
	}
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return got
			}
			got = true
			if ev.Err != nil {
				r.setLastErr(ev.Err)
				r.log.Error("fleet repo fetch failed; keeping the applied policy", "err", ev.Err)
				continue
			}
			r.setLastErr(nil)
			head, attempts = ev.Head, 0
			try()
		case <-retry:
			try()
		}
	}
}
