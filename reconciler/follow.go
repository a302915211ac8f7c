package reconciler

import (
	"context"
	"errors"

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
			for ev := range evs {
				failures = 0
				if ev.Err != nil {
					r.setLastErr(ev.Err)
					r.log.Error("fleet repo fetch failed; keeping the applied policy", "err", ev.Err)
					continue
				}
				r.setLastErr(nil)
				r.apply(ctx, ev.Head)
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
