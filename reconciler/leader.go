package reconciler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/patchline/patchline/reconciler/store/postgres"
)

// Leadership. Every replica on a database serves the agent and admin
// APIs; exactly one at a time, the leader, does the work that writes
// policy's consequences: it follows the fleet repo and applies its
// revisions, re-plans clients (the queue and the replanner's timers),
// and expires jobs. The PostgreSQL store's leader lease (postgres.DB,
// lease.go) decides which replica leads, and its fencing token keeps a
// replica that lost the lease without noticing from writing jobs. With
// the embedded SQLite store there is one patchd per data directory, and
// it always leads.

// The lease's timing. A leader renews every leaseRenew and gives up
// leading when it has not renewed for leaseTTL (it may then no longer
// hold the lease); a follower asks every leaseTry. A leader killed
// outright is replaced within leaseTTL+leaseTry. These pace a replica's
// attempts only: whether a lease has expired is the database's clock's
// call, so the replicas' clocks need not agree.
const (
	leaseTTL   = 10 * time.Second
	leaseRenew = leaseTTL / 3
	leaseTry   = time.Second
)

// leaseStore is the store's leader lease (postgres.DB).
type leaseStore interface {
	AcquireLease(ctx context.Context, holder, instance string, ttl time.Duration) (int64, error)
	ReleaseLease(ctx context.Context, instance string) error
	Leader(ctx context.Context) (postgres.Lease, error)
	EnableFencing()
	SetFence(token int64)
	FencedWrites() int64
}

var _ leaseStore = (*postgres.DB)(nil)

// replicaNameRE is what a replica name may be: it is a metric label value
// and appears in logs and status.
var replicaNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

func validReplicaName(name string) bool { return replicaNameRE.MatchString(name) }

// defaultReplicaName is the host name, cut to what a replica name may
// be, or "patchd".
func defaultReplicaName() string {
	host, err := os.Hostname()
	if err != nil {
		return "patchd"
	}
	name := regexp.MustCompile(`[^A-Za-z0-9._-]`).ReplaceAllString(host, "-")
	if len(name) > 63 {
		name = name[:63]
	}
	if name == "" {
		return "patchd"
	}
	return name
}

// newInstance returns an id for this run of the replica, so a replica
// restarted under the same name waits out its last run's lease, which
// that run may still be using (a paused process is not a dead one).
func newInstance(name string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", name, os.Getpid(), hex.EncodeToString(b))
}

// leads reports whether this replica leads now.
func (c *Controller) leads() bool { return c.leading.Load() }

// setLeading records whether this replica leads, for the leader-only
// paths (events, replanAll) and the metric.
func (c *Controller) setLeading(on bool) {
	c.leading.Store(on)
	c.leaderMetric.SetLeading(on)
}

// fenced is called when the store refused a leader-only write because
// another replica holds the lease: the leader stops leading at once.
func (c *Controller) fenced() {
	select {
	case c.fencedCh <- struct{}{}:
	default:
	}
}

// lead runs the leader's work while this replica leads, until ctx ends:
// at once and for good with SQLite; with PostgreSQL, in each term this
// replica holds the lease, following between terms.
func (c *Controller) lead(ctx context.Context) {
	if c.lease == nil {
		c.leaderWork(ctx, true)
		return
	}
	for term := 0; ; term++ {
		token, immediate := c.waitForLease(ctx, term == 0)
		if token == 0 {
			return
		}
		c.log.Info("this replica leads: it follows the fleet repo and plans", "replica", c.cfg.ReplicaName, "token", token)
		c.lease.SetFence(token)
		// Drain a refusal left over from the last term.
		select {
		case <-c.fencedCh:
		default:
		}
		c.setLeading(true)
		termCtx, endTerm := context.WithCancel(ctx)
		var wg sync.WaitGroup
		// A replica that took the lease at start restored its state in
		// New a moment ago; any other term starts from what the last
		// leader left in the store.
		wg.Go(func() { c.leaderWork(termCtx, immediate) })
		why := c.keepLease(termCtx, token)
		// Fence first: no leader-only write is made once the lease may
		// be another's, even by work that has not noticed the end yet.
		c.lease.SetFence(0)
		c.setLeading(false)
		endTerm()
		wg.Wait()
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := c.lease.ReleaseLease(rctx, c.instance); err != nil {
				c.log.Warn("could not release the leader lease; another replica takes over when it expires", "err", err)
			}
			cancel()
			return
		}
		c.log.Warn("this replica lost the leader lease and follows now", "replica", c.cfg.ReplicaName, "reason", why)
	}
}

// waitForLease asks for the lease every leaseTry until it gets it, and
// returns its token (0 once ctx ended) and whether it got it at the first
// attempt of the replica's first term.
func (c *Controller) waitForLease(ctx context.Context, first bool) (token int64, immediate bool) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, leaseTry)
		token, err := c.lease.AcquireLease(actx, c.cfg.ReplicaName, c.instance, leaseTTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return 0, false
		case err != nil:
			c.log.Warn("cannot ask for the leader lease; trying again", "err", err)
		case token != 0:
			return token, first && attempt == 0
		case attempt == 0:
			c.log.Info("another replica leads; this one serves the APIs and follows", "replica", c.cfg.ReplicaName)
		}
		t := time.NewTimer(leaseTry)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, false
		case <-t.C:
		}
	}
}

// keepLease renews the lease of token every leaseRenew until ctx ends or
// the lease is lost, and says why it returned: another replica holds the
// lease, a write was fenced, or no renewal succeeded for leaseTTL.
func (c *Controller) keepLease(ctx context.Context, token int64) error {
	// renewed is when the last successful renewal was sent: the lease
	// runs at least leaseTTL from then.
	renewed := time.Now()
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.fencedCh:
			return errors.New("the store refused a write: another replica holds the lease")
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, leaseRenew)
		got, err := c.lease.AcquireLease(rctx, c.cfg.ReplicaName, c.instance, leaseTTL)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil && got == token:
			renewed = sent
		case err == nil:
			return fmt.Errorf("another replica holds the lease (token %d, ours %d)", got, token)
		case time.Since(renewed) >= leaseTTL-leaseRenew/2:
			return fmt.Errorf("could not renew the lease for %s: %w", time.Since(renewed).Round(time.Second), err)
		default:
			c.log.Warn("could not renew the leader lease; trying again", "err", err)
		}
	}
}

// leaderWork runs the leader's work until ctx ends: following the fleet
// repo, re-planning, expiring jobs. Unless fresh, it first takes up what
// the last leader left: the fleet repo fetched, the revisions each client
// runs and the halts from the store, every client queued for a re-plan.
func (c *Controller) leaderWork(ctx context.Context, fresh bool) {
	if !fresh {
		c.takeOver(ctx)
	}
	var wg sync.WaitGroup
	wg.Go(func() { c.expireLoop(ctx) })
	wg.Go(func() { c.revisions.follow(ctx, c.follow) })
	wg.Go(func() { c.queue.Run(ctx, c.workers(), c.replanner.reconcile) })
	wg.Wait()
	// The timers of this term's re-plans would only queue clients for
	// the next term, which re-plans every client anyway.
	c.replanner.stopTimers()
}

// takeOver brings this replica's view up to what the store holds, as at
// start, before it leads.
func (c *Controller) takeOver(ctx context.Context) {
	if c.fetchOnce != nil {
		fctx, cancel := context.WithTimeout(ctx, cloneTimeout)
		if err := c.fetchOnce(fctx); err != nil && ctx.Err() == nil {
			c.log.Warn("fetching the fleet repo before leading failed; clients whose revision cannot be read are refused until a commit loads them", "err", err)
		}
		cancel()
	}
	if err := c.replanner.loadHalts(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("reading the halted rollouts before leading failed", "err", err)
	}
	if err := c.revisions.restore(ctx); err != nil && ctx.Err() == nil {
		c.log.Error("restoring the applied revisions before leading failed", "err", err)
	}
	c.replanAll()
}
