package reconciler

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/commitstatus"
	"github.com/patchline/patchline/reconciler/feeds"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// replanStore is what the replanner reads and writes in the store.
type replanStore interface {
	// ClientSnapshot returns the reported state of one client's endpoints.
	ClientSnapshot(ctx context.Context, client string, now time.Time) (*protocol.Snapshot, error)
	// LastJobSeqs returns the highest job number each endpoint of client
	// has seen.
	LastJobSeqs(ctx context.Context, client string) (map[string]int64, error)
	// CreateJobs stores one client's numbered, signed jobs in one
	// transaction and returns those it created.
	CreateJobs(ctx context.Context, client string, jobs []store.Job, now time.Time) ([]store.Job, error)
	// Halts returns the halted rollouts RecordHalts stored, by client.
	Halts(ctx context.Context) (map[string][]protocol.Halt, error)
	// RecordHalts stores the client's halted rollouts, auditing each
	// halt that appeared and each that went (a resume), and returns how
	// many audit entries that made.
	RecordHalts(ctx context.Context, client, revision string, halted []protocol.Halt, at time.Time) (int, error)
}

// policySource tells the replanner which policy a client runs.
type policySource interface {
	Policy(client string) (appliedClient, bool)
}

// replanner re-plans one client at a time (the queue calls reconcile) and
// owns what re-planning leaves behind: each client's figures and last
// error for /v1/status, and the timers that wake a client's re-plan when
// time alone can change a decision.
type replanner struct {
	clock   clock.Clock
	log     *slog.Logger
	store   replanStore
	policy  policySource
	metrics *metrics.Metrics
	key     ed25519.PrivateKey
	// queue takes the clients whose timers fire.
	queue enqueuer
	// notify wakes the long-polls of endpoints that got jobs. It is set
	// once, before the queue runs.
	notify func(endpoints ...string)
	// feeds are the vulnerability feeds applied to each snapshot before
	// it is planned; set once, before the queue runs; nil for none.
	feeds interface{ Feeds() *feeds.Set }
	// commitStatus posts each change of a client's halts to the forge;
	// set once, before the queue runs; nil for none.
	commitStatus *commitstatus.Notifier
	// agentReleases says which agent versions can be offered; set once,
	// before the queue runs.
	agentReleases func(version string) error

	mu sync.Mutex // guards the fields below
	// summaries are each client's figures from its last re-plan, and the
	// error of its last re-plan when that failed.
	summaries map[string]protocol.ClientStatus
	// planned is the digest of the policy each client's summary was
	// planned with ("" for none).
	planned map[string]string
	// timers wake a client's re-plan when a window opens, a soak ends or an
	// endpoint turns stale.
	timers map[string]clock.Timer
	// settling holds the clients whose report-triggered re-plan is waiting
	// out reportSettle, with its timer.
	settling map[string]clock.Timer
	// halts are each client's halted rollouts as the store holds them
	// (recordHalts).
	halts map[string][]protocol.Halt
	// stopped is set by stop: no timer is armed after it.
	stopped bool
}

func newReplanner(clk clock.Clock, log *slog.Logger, st replanStore, pol policySource, m *metrics.Metrics, key ed25519.PrivateKey, q enqueuer) *replanner {
	return &replanner{
		clock: clk, log: log, store: st, policy: pol, metrics: m, key: key, queue: q,
		summaries: make(map[string]protocol.ClientStatus),
		planned:   make(map[string]string),
		timers:    make(map[string]clock.Timer),
		settling:  make(map[string]clock.Timer),
		halts:     make(map[string][]protocol.Halt),
	}
}

// reportSettle is how long a report waits before it re-plans its client,
// so that the reports of many endpoints of one client arriving together
// (every agent reports after a controller restart, or at the top of the
// hour) cost one re-plan instead of one each. Results and revisions do not
// wait: they may release the next ring or a new job at once.
const reportSettle = 250 * time.Millisecond

// replanSoon re-plans client once reportSettle has passed, folding in every
// report that arrives meanwhile.
func (r *replanner) replanSoon(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.settling[client]; ok || r.stopped {
		return
	}
	r.settling[client] = r.clock.AfterFunc(reportSettle, func() {
		r.mu.Lock()
		delete(r.settling, client)
		r.mu.Unlock()
		r.queue.Add(client)
	})
}

// reconcile re-plans one client and stores and announces its new jobs. An
// error is kept in the client's status and returned, for the queue to try
// again after a backoff; the other clients are not held back.
func (r *replanner) reconcile(ctx context.Context, client string) error {
	start := time.Now()
	now := r.clock.Now()
	pol, known := r.policy.Policy(client)
	if known && pol.client == nil {
		r.refusedAtStart(client, pol, now)
		return nil
	}
	snap, res, err := r.replan(ctx, client, pol, known, now)
	if err != nil {
		r.failed(client, known, err, now)
		return err
	}
	var cl *schema.Client
	if known {
		cl = pol.client
	}
	fig := r.metrics.Observe(client, cl, snap, res, now)
	if err := r.summarise(client, pol, known, len(snap.Endpoints), fig, res, now); err != nil {
		r.failed(client, known, err, now)
		return err
	}
	wake := nextWake(res, now)
	if known {
		wake = earliest(wake, nextStale(snap, pol.client.EffectiveStaleAfter(), now), now)
	}
	r.wakeAt(client, wake)
	r.metrics.ReconcileDone(time.Since(start))
	return nil
}

// refusedAtStart shows a client whose last applied revision could not be
// evaluated again after a restart as refused, with why, instead of
// planning it as an unknown client: no plan is made, so no job is sent or
// withdrawn, and no timer is armed, until a commit loads the client.
func (r *replanner) refusedAtStart(client string, pol appliedClient, now time.Time) {
	r.wakeAt(client, time.Time{})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.summaries[client] = protocol.ClientStatus{Client: client, Revision: pol.revision, Known: true, PlannedAt: now, Refused: pol.refused}
	r.planned[client] = pol.digest()
}

// replanError is a failed re-plan, with the stage that failed (a metric
// label).
type replanError struct {
	stage string
	err   error
}

func (e *replanError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *replanError) Unwrap() error { return e.err }

// replan plans client and dispatches its new jobs.
func (r *replanner) replan(ctx context.Context, client string, pol appliedClient, known bool, now time.Time) (*protocol.Snapshot, *plan.Result, error) {
	snap, err := r.store.ClientSnapshot(ctx, client, now)
	if err != nil {
		return nil, nil, &replanError{"store", fmt.Errorf("read client state: %w", err)}
	}
	// The same enrichment patchctl plan applies, so a pull request's plan
	// and the controller's agree.
	var set *feeds.Set
	if r.feeds != nil {
		set = r.feeds.Feeds()
	}
	feeds.Enrich(snap, set)
	fleet := &schema.Fleet{Revision: pol.revision, Clients: map[string]*schema.Client{}}
	if known {
		fleet.Clients[client] = pol.client
	}
	res, err := plan.Plan(fleet, snap, now, plan.Options{Decisions: true, AgentReleases: r.agentReleases})
	if err != nil {
		return nil, nil, &replanError{"plan", fmt.Errorf("plan revision %s: %w", pol.revision, err)}
	}
	if len(res.Jobs) == 0 {
		return snap, res, nil
	}
	seqs, err := r.store.LastJobSeqs(ctx, client)
	if err != nil {
		return nil, nil, &replanError{"store", err}
	}
	jobs, err := signJobs(r.key, res.Jobs, snap, seqs)
	if err != nil {
		return nil, nil, &replanError{"sign", err}
	}
	created, err := r.store.CreateJobs(ctx, client, jobs, now)
	if err != nil {
		return nil, nil, &replanError{"store", fmt.Errorf("store jobs: %w", err)}
	}
	perRing := make(map[string]int)
	endpoints := make([]string, 0, len(created))
	for _, j := range created {
		perRing[j.Ring]++
		endpoints = append(endpoints, j.Endpoint)
	}
	for ring, n := range perRing {
		r.metrics.JobsCreated(client, ring, n)
	}
	if len(created) > 0 {
		r.notify(endpoints...)
		r.log.Info("jobs queued", "client", client, "revision", pol.revision, "jobs", len(created))
	}
	return snap, res, nil
}

// failed keeps a failed re-plan's error in the client's status, beside the
// figures of its last good re-plan.
func (r *replanner) failed(client string, known bool, err error, now time.Time) {
	stage := "store"
	var re *replanError
	if errors.As(err, &re) {
		stage = re.stage
	}
	r.metrics.ReconcileFailed(stage)
	r.log.Error("re-plan failed; trying again after a backoff", "client", client, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, ok := r.summaries[client]
	if !ok {
		cs = protocol.ClientStatus{Client: client, Known: known}
	}
	cs.Error, cs.ErrorAt = err.Error(), now
	r.summaries[client] = cs
}

// nextWake is the earliest future moment a decision can change by time
// alone: a window opening, a soak ending, an approval's minAge passing, an
// open job's window closing.
func nextWake(res *plan.Result, now time.Time) time.Time {
	var next time.Time
	for _, d := range res.Decisions {
		if d.EligibleAt != nil {
			next = earliest(next, *d.EligibleAt, now)
		}
	}
	for _, j := range res.Jobs {
		next = earliest(next, j.NotAfter, now)
	}
	return next
}

// nextStale is when the next of snap's endpoints turns stale, so the
// compliance figures and the not-reporting alert notice agents that went
// quiet even when nothing else happens to the client.
func nextStale(snap *protocol.Snapshot, staleAfter time.Duration, now time.Time) time.Time {
	var next time.Time
	for _, ep := range snap.Endpoints {
		next = earliest(next, ep.LastSeen.Add(staleAfter), now)
	}
	return next
}

// earliest returns the earlier of a and b among those after now (zero when
// neither is).
func earliest(a, b, now time.Time) time.Time {
	if !b.After(now) {
		return a
	}
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// wakeSlack puts a timer's re-plan after the boundary it waits for, not on
// it.
const wakeSlack = time.Second

// wakeAt arranges one re-plan of client at t (none when t is zero),
// replacing the one arranged before.
func (r *replanner) wakeAt(client string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.timers[client]; ok {
		old.Stop()
		delete(r.timers, client)
	}
	if t.IsZero() || r.stopped {
		return
	}
	d := t.Sub(r.clock.Now()) + wakeSlack
	r.timers[client] = r.clock.AfterFunc(d, func() { r.queue.Add(client) })
}

// stop stops every timer; none is armed after it.
func (r *replanner) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.stopTimers()
}

// stopTimers stops every timer armed so far (a leader's term ended).
func (r *replanner) stopTimers() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.timers {
		t.Stop()
		delete(r.timers, id)
	}
	for id, t := range r.settling {
		t.Stop()
		delete(r.settling, id)
	}
}
