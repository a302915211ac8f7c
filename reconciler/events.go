package reconciler

import (
	"context"

	"github.com/patchline/patchline/reconciler/store"
)

// events adapts the controller to the API's write notifications: each only
// schedules work.
type events struct{ c *Controller }

func (e events) Enrolled(ctx context.Context, client, endpoint string) {}

func (e events) Reported(ctx context.Context, client, endpoint string) {
	if !e.c.leads() {
		e.c.replicas.toLeader(kindReported, client)
		return
	}
	e.c.replanner.replanSoon(client)
}

func (e events) ResultRecorded(ctx context.Context, client, endpoint, job, ring string, results []store.UpdateResult) {
	for _, r := range results {
		e.c.metrics.JobResult(client, ring, r.Result)
	}
	logJobResults(ctx, e.c.log, client, endpoint, job, ring, results)
	e.c.replan(client)
}

// replan queues client's re-plan on the leader: here, or through the
// database on whichever replica leads.
func (c *Controller) replan(client string) {
	if !c.leads() {
		c.replicas.toLeader(kindReplan, client)
		return
	}
	c.queue.Add(client)
}

// Removed: a revoked or deleted endpoint leaves its client's plan and
// figures.
func (e events) Removed(ctx context.Context, client, endpoint string) {
	e.c.replan(client)
}

// GitHook: only the leader follows the fleet repo; a follower passes the
// trigger on.
func (e events) GitHook(ctx context.Context) {
	if !e.c.leads() {
		e.c.replicas.toLeader(kindHook, "")
		return
	}
	e.c.gitHook()
}

// gitHook makes the source fetch now.
func (c *Controller) gitHook() {
	select {
	case c.hook <- struct{}{}:
	default:
	}
}
