package reconciler

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/patchline/patchline/reconciler/store/postgres"
)

// The kinds of notification a replica sends to the leader, besides the
// store's own (postgres.NotifyJobs, NotifyEndpoint, NotifyTokens): what
// the API on a follower heard that the leader must act on.
const (
	// kindReported: endpoints of these clients reported (a re-plan after
	// reportSettle, as for a report on the leader).
	kindReported = "reported"
	// kindReplan: these clients need a re-plan now (a result, a removed
	// endpoint).
	kindReplan = "replan"
	// kindHook: the fleet repo's forge said it moved.
	kindHook = "hook"
)

// busFlush is how long a follower gathers clients before it tells the
// leader, so a burst of reports costs one notification, not one each.
const busFlush = 100 * time.Millisecond

// notifier is the store's side of the replicas' notifications
// (postgres.DB).
type notifier interface {
	Notify(ctx context.Context, kind string, ids ...string) error
	Listen(ctx context.Context, handle func(postgres.Notification), connected func(), logf func(err error, retryIn time.Duration))
}

// replicaBus carries notifications between the replicas on a PostgreSQL
// store: it wakes this replica's long-polls for jobs any replica created,
// refreshes its caches after another replica's changes, passes what a
// follower's API heard to the leader, and, on the leader, acts on it.
// A nil *replicaBus (SQLite) does nothing.
type replicaBus struct {
	c   *Controller
	db  notifier
	log *slog.Logger

	mu sync.Mutex // guards pending
	// pending are the clients waiting to be sent to the leader, by kind
	// (kindHook's set holds "").
	pending map[string]map[string]bool
	// flush has a token when pending may hold something; buffered by one.
	flush chan struct{}
}

func newReplicaBus(c *Controller, db notifier) *replicaBus {
	return &replicaBus{c: c, db: db, log: c.log, pending: make(map[string]map[string]bool), flush: make(chan struct{}, 1)}
}

// toLeader passes client's event of kind on to the leader, gathered with
// others for busFlush.
func (b *replicaBus) toLeader(kind, client string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	set := b.pending[kind]
	if set == nil {
		set = make(map[string]bool)
		b.pending[kind] = set
	}
	set[client] = true
	b.mu.Unlock()
	select {
	case b.flush <- struct{}{}:
	default:
	}
}

// run listens and sends until ctx ends.
func (b *replicaBus) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		b.db.Listen(ctx, b.handle, b.reconnected, func(err error, retryIn time.Duration) {
			b.log.Warn("lost the connection that carries the other replicas' notifications; connecting again", "err", err, "retry_in", retryIn)
		})
	})
	wg.Go(func() { b.send(ctx) })
	wg.Wait()
}

// send sends the pending events every busFlush while there are any.
func (b *replicaBus) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.flush:
		}
		t := time.NewTimer(busFlush)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		b.mu.Lock()
		pending := b.pending
		b.pending = make(map[string]map[string]bool)
		b.mu.Unlock()
		for _, kind := range slices.Sorted(maps.Keys(pending)) {
			ids := slices.Sorted(maps.Keys(pending[kind]))
			if kind == kindHook {
				ids = nil
			}
			// Lost, at worst: the leader re-plans each client at the
			// latest when its timers fire, and every client when a new
			// leader takes over.
			if err := b.db.Notify(ctx, kind, ids...); err != nil && ctx.Err() == nil {
				b.log.Warn("could not tell the leader what this replica's API heard", "kind", kind, "clients", len(ids), "err", err)
			}
		}
	}
}

// handle acts on one notification.
func (b *replicaBus) handle(n postgres.Notification) {
	c := b.c
	// Bounded, so a slow store does not hold the notifications behind.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch n.Kind {
	case postgres.NotifyJobs:
		c.api.Notify(n.IDs...)
	case postgres.NotifyEndpoint:
		for _, id := range n.IDs {
			if err := c.api.ForgetEndpoint(ctx, id); err != nil {
				b.log.Warn("could not read an endpoint another replica changed; it is read again on its next request", "endpoint", id, "err", err)
			}
		}
	case postgres.NotifyTokens:
		if err := c.api.ReloadTokens(ctx); err != nil {
			b.log.Warn("could not read the admin API tokens another replica changed; they are read again on the next request", "err", err)
		}
	case kindReported:
		if c.leads() {
			for _, id := range n.IDs {
				c.replanner.replanSoon(id)
			}
		}
	case kindReplan:
		if c.leads() {
			for _, id := range n.IDs {
				c.queue.Add(id)
			}
		}
	case kindHook:
		if c.leads() {
			c.gitHook()
		}
	}
}

// reconnected catches up after notifications may have been missed: every
// long-poll reads its jobs again, the caches are read again, and the
// leader re-plans every client.
func (b *replicaBus) reconnected() {
	c := b.c
	b.log.Info("listening to the other replicas again; catching up on what may have been missed")
	c.api.NotifyAll()
	c.api.ForgetEndpoints()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.api.ReloadTokens(ctx); err != nil {
		b.log.Warn("could not read the admin API tokens again; they are read again on the next request", "err", err)
	}
	c.replanAll()
}
