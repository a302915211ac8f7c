// Package commitstatus tells the fleet repo's forge (GitHub, GitLab,
// Gitea) what the controller did with each commit, as commit statuses a
// technician sees on the commit and its pull request: a revision applied
// ("applied to 12 clients") or refused (the first problem's
// path:line:col: message), and a client's rollouts halted, on the
// revision the client runs when the halt is recorded.
//
// The controller's hooks (Applied, Refused, Halts) only queue statuses
// and return: a slow or absent forge never holds back reconciliation.
// One worker (Run) posts them, one request at a time and at most one a
// second, waiting as long as the forge's rate limit asks, and tries a
// failed one again with a backoff until the forge takes it. The queue is
// bounded, keeps only the latest status of each commit and context (what
// the forge would show), and, when full, drops the oldest, counted.
package commitstatus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/metrics"
)

// Limits of the notifier.
const (
	// queueLimit bounds the statuses waiting for the forge. A commit
	// makes at most 1+maxClientStatuses, a re-plan one per client, so
	// only a forge down for many commits fills it.
	queueLimit = 256
	// minInterval spaces requests: GitHub allows 80 content-creating
	// requests a minute, and a burst of statuses is never urgent.
	minInterval = time.Second
	// requestTimeout bounds one request.
	requestTimeout = 30 * time.Second
	// firstBackoff and maxBackoff bound the wait before a failed status
	// is tried again, doubling from one to the other.
	firstBackoff = time.Second
	maxBackoff   = 5 * time.Minute
)

// Options are what a Notifier needs besides its Config.
type Options struct {
	// Clock runs the waits (clock.Real when nil).
	Clock clock.Clock
	// Logger gets a line when posting starts failing, when it works
	// again, and for each status given up (slog.Default when nil).
	Logger *slog.Logger
	// Registerer takes the notifier's counters (metrics.CommitStatus).
	Registerer prometheus.Registerer
}

// Notifier posts commit statuses to one repository on one forge. A nil
// *Notifier posts nothing: its hooks return at once.
type Notifier struct {
	cfg     Config
	api     *url.URL
	clock   clock.Clock
	log     *slog.Logger
	metrics *metrics.CommitStatus
	client  *http.Client
	// wake tells the worker a status was queued; buffered by one, so
	// a burst becomes one wake-up.
	wake chan struct{}

	mu sync.Mutex // guards queue
	// queue holds the statuses waiting to be posted, oldest first, at
	// most one per commit and context.
	queue []*pending

	// Owned by the worker (Run) alone.
	// notBefore is when the next request may go (minInterval, or a rate
	// limit's wait).
	notBefore time.Time
	// failing is set while requests fail, so that the log says so once
	// and again when they work.
	failing bool
}

// pending is a status waiting to be posted.
type pending struct {
	status Status
	// failures is how many times posting it failed.
	failures int
	// due is when it may be tried (again).
	due time.Time
}

// New returns the notifier of cfg, nil when cfg is not Enabled. Its
// worker runs in Run.
func New(cfg Config, opts Options) (*Notifier, error) {
	api, err := cfg.endpoint()
	if err != nil || api == nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registerer == nil {
		return nil, errors.New("commit statuses: no metrics registerer")
	}
	return &Notifier{
		cfg: cfg, api: api, clock: opts.Clock,
		log:     opts.Logger.With("provider", string(cfg.Provider), "repo", cfg.Repo),
		metrics: metrics.NewCommitStatus(opts.Registerer, string(cfg.Provider)),
		// A redirect is not followed: a POST would turn into a GET, and
		// the token could follow it to another scheme.
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		wake:   make(chan struct{}, 1),
	}, nil
}

// Applied queues the statuses of revision, applied to clients and
// refused for the clients in refused (client → problems), which keep
// their last good revision.
func (n *Notifier) Applied(revision string, clients []string, refused map[string][]string) {
	if n == nil {
		return
	}
	n.enqueue(appliedStatuses(revision, clients, refused)...)
}

// Refused queues the status of revision refused for reason (invalid,
// verify) with its problems, for the whole commit (client "") or one
// client.
func (n *Notifier) Refused(revision, client, reason string, problems []string) {
	if n == nil {
		return
	}
	n.enqueue(refusedStatus(revision, client, reason, problems))
}

// Halts queues the status of client's halted rollouts, which changed, on
// revision, the revision the client runs: a failure naming the first
// halt, or a success once none is left.
func (n *Notifier) Halts(revision, client string, halts []protocol.Halt) {
	if n == nil {
		return
	}
	n.enqueue(haltStatus(revision, client, halts))
}

// enqueue adds statuses to the queue, each replacing a waiting one of the
// same commit and context, and wakes the worker. It never blocks on the
// forge: a full queue drops its oldest status.
func (n *Notifier) enqueue(statuses ...Status) {
	now := n.clock.Now()
	n.mu.Lock()
	for _, s := range statuses {
		if i := n.find(s.key()); i >= 0 {
			// It keeps its place and its backoff: only what it says
			// changes.
			n.queue[i].status = s
			continue
		}
		n.queue = append(n.queue, &pending{status: s, due: now})
		n.trim()
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// find is the index of the waiting status with key, -1 when none; n.mu
// is held.
func (n *Notifier) find(key string) int {
	return slices.IndexFunc(n.queue, func(p *pending) bool { return p.status.key() == key })
}

// trim drops the oldest statuses past queueLimit; n.mu is held.
func (n *Notifier) trim() {
	for len(n.queue) > queueLimit {
		old := n.queue[0]
		n.queue = n.queue[1:]
		n.metrics.Dropped(metrics.StatusQueueFull)
		n.log.Warn("commit status dropped: too many wait for the forge", "revision", old.status.Revision, "context", old.status.Context, "waiting", queueLimit)
	}
}

// Run posts the queued statuses until ctx ends; statuses still waiting
// then are not posted. A nil Notifier returns at once.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil {
		return
	}
	for {
		if !n.sleep(ctx, n.notBefore.Sub(n.clock.Now())) {
			break
		}
		p, wait := n.take(n.clock.Now())
		if p == nil {
			if !n.idle(ctx, wait) {
				break
			}
			continue
		}
		n.post(ctx, p)
	}
	n.mu.Lock()
	left := len(n.queue)
	n.mu.Unlock()
	if left > 0 {
		n.log.Warn("patchd stopped before posting every commit status", "not_posted", left)
	}
}

// take removes and returns the oldest status due at now; when none is, it
// returns how long until the first one is (0 for an empty queue).
func (n *Notifier) take(now time.Time) (*pending, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var next time.Time
	for i, p := range n.queue {
		if !p.due.After(now) {
			n.queue = slices.Delete(n.queue, i, i+1)
			return p, 0
		}
		if next.IsZero() || p.due.Before(next) {
			next = p.due
		}
	}
	if next.IsZero() {
		return nil, 0
	}
	return nil, next.Sub(now)
}

// post sends p and files the outcome: done, given up, or queued again
// with a backoff.
func (n *Notifier) post(ctx context.Context, p *pending) {
	v, wait, err := n.send(ctx, p.status)
	now := n.clock.Now()
	n.notBefore = now.Add(max(minInterval, wait))
	s := p.status
	switch {
	case v == accepted:
		n.metrics.Sent()
		if n.failing {
			n.failing = false
			n.log.Info("commit statuses are posted again")
		}
	case ctx.Err() != nil:
		// Stopping: the status goes back, to be counted as not posted.
		n.requeue(p)
	case v == rejected:
		n.metrics.Failed()
		n.metrics.Dropped(metrics.StatusRejected)
		n.log.Warn("the forge refused a commit status; check --status-repo, --status-api and the token's permissions", "revision", s.Revision, "context", s.Context, "err", err)
	default:
		n.metrics.Failed()
		p.failures++
		p.due = now.Add(max(backoff(p.failures), wait))
		if !n.failing {
			n.failing = true
			n.log.Warn("cannot post commit statuses; trying again with a backoff", "revision", s.Revision, "context", s.Context, "err", err)
		} else {
			n.log.Debug("commit status not posted; trying again", "revision", s.Revision, "context", s.Context, "failures", p.failures, "err", err)
		}
		n.requeue(p)
	}
}

// requeue puts p back at the front of the queue, unless a newer status
// of its commit and context came meanwhile.
func (n *Notifier) requeue(p *pending) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.find(p.status.key()) >= 0 {
		return
	}
	n.queue = slices.Insert(n.queue, 0, p)
	n.trim()
}

// send posts s once and judges the answer; err says what went wrong.
func (n *Notifier) send(ctx context.Context, s Status) (verdict, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := n.cfg.request(ctx, n.api, s)
	if err != nil {
		return rejected, 0, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// The error names the URL, never the token, which is a header.
		return retry, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	message := errorMessage(body)
	v, wait := n.cfg.judge(resp.StatusCode, resp.Header, message, s, n.clock.Now())
	if v == accepted {
		return v, 0, nil
	}
	return v, wait, fmt.Errorf("%s answered %s: %s", n.cfg.Provider, resp.Status, truncate(oneLine(message), 300))
}

// sleep waits d (no time when d <= 0) and reports whether ctx is still
// live.
func (n *Notifier) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	fired := make(chan struct{})
	t := n.clock.AfterFunc(d, func() { close(fired) })
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-fired:
		return true
	}
}

// idle waits for a status to be queued, or for wait to pass when it is
// positive, and reports whether ctx is still live.
func (n *Notifier) idle(ctx context.Context, wait time.Duration) bool {
	var fired chan struct{}
	if wait > 0 {
		fired = make(chan struct{})
		t := n.clock.AfterFunc(wait, func() { close(fired) })
		defer t.Stop()
	}
	select {
	case <-ctx.Done():
		return false
	case <-n.wake:
	case <-fired:
	}
	return true
}

// backoff is the wait before a status that failed failures times is
// tried again.
func backoff(failures int) time.Duration {
	d := firstBackoff
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
