// Package reconciler is Patchline's controller: it follows a fleet repo,
// turns each client's policy and its endpoints' reports into decisions and
// jobs, and hands the jobs to agents.
//
// The pipeline is source → policy → plan → dispatch:
//
//   - source (package source) fetches the tracked branch and verifies a new
//     head (history, signatures);
//   - policy (package loader) loads and vets the head; a client whose files
//     fail keeps its last good revision, a fault in the root files or a
//     signature problem refuses the whole commit;
//   - plan (package plan) is the same pure planner `patchctl plan` runs;
//   - dispatch stores a client's new jobs in one transaction (package store)
//     and wakes the agents long-polling for them (package api).
//
// The reconcile is level-based: an event (a new revision, a report, a
// result, a timer for a window opening or a soak ending) only says which
// client to look at again; the re-plan compares that client's whole desired
// and reported state. A keyed queue turns a burst of events for one client
// into one re-plan.
package reconciler

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/api"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// Config is everything patchd is told at start. cmd/patchd builds it from
// flags; tests build it directly.
type Config struct {
	// DataDir holds the SQLite store, the job-signing key and the clone of
	// the fleet repo.
	DataDir string
	// Repo is the fleet repo to follow by URL. Repo.Dir is set by the
	// controller (a clone under DataDir).
	Repo source.Config
	// RepoDir, instead of Repo.URL, follows a local repository's branch
	// (RepoBranch) through filesystem notifications.
	RepoDir    string
	RepoBranch string
	// Poll is how often the repo is fetched besides webhooks (default 1m).
	Poll time.Duration
	// Verify says whether commits must be signed, and by which keys.
	Verify source.VerifyPolicy
	// SecretsFile holds enrollment secrets, the admin token and the
	// webhook secret.
	SecretsFile string
	// Listen is the address of the API and /metrics (default
	// 127.0.0.1:8420; port 0 picks a free one).
	Listen string
	// TLSCert and TLSKey serve the API over TLS. Without them, plain HTTP is
	// refused unless Listen is a loopback address or Insecure is set.
	TLSCert, TLSKey string
	Insecure        bool
	// LongPollMax bounds one long-poll; Lease is how long a delivered job
	// waits for its result before it is offered again.
	LongPollMax time.Duration
	Lease       time.Duration
	// EnrollRate is the enrollments per second accepted after a burst
	// (default 10): raise it to onboard a large fleet at once.
	EnrollRate float64
	// LoadTimeout bounds one client's CUE evaluation.
	LoadTimeout time.Duration
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Controller is a running patchd.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   store.Store
	loader  *loader.Loader
	key     ed25519.PrivateKey
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	api     *api.Server
	queue   *queue
	ln      net.Listener
	srv     *http.Server
	// hook carries webhook triggers to the source; buffered by one so a
	// burst of pushes becomes one pending fetch.
	hook chan struct{}
	// repoDir is where revisions are read from: the clone or RepoDir.
	repoDir string

	// mu guards policy, head, lastErr, refused, summaries and timers.
	mu sync.Mutex
	// policy is the revision each client runs.
	policy map[string]appliedClient
	// head is the last branch head applied (fully or for some clients) or
	// refused; zero before the first.
	head plumbing.Hash
	// applied is the last branch head applied: a new head must descend
	// from it and, when signing is required, every commit since it must be
	// signed. A refused head never becomes the base of that check, or a
	// signed commit on top of a refused one would carry it in.
	applied plumbing.Hash
	// lastErr is the last failure to fetch or read the branch.
	lastErr string
	// refused is the most recent refused head and why.
	refused *protocol.Refusal
	// summaries are each client's figures from its last re-plan.
	summaries map[string]protocol.ClientStatus
	// timers wake a client's re-plan when a window opens or a soak ends.
	timers map[string]*time.Timer
	// settling holds the clients whose report-triggered re-plan is waiting
	// out reportSettle.
	settling map[string]bool
}

// appliedClient is one client's policy at the revision it runs.
type appliedClient struct {
	revision string
	client   *schema.Client
}

// New opens the store, the signing key and the listener. Run starts the
// work.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("no data directory: pass --data-dir")
	}
	if (cfg.Repo.URL == "") == (cfg.RepoDir == "") {
		return nil, errors.New("give exactly one of --repo URL and --repo-dir DIR")
	}
	if cfg.SecretsFile == "" {
		return nil, errors.New("no secrets file: pass --secrets FILE (enrollment secrets, admin token, webhook secret)")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8420"
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if cfg.TLSCert == "" && !cfg.Insecure && !loopback(cfg.Listen) {
		return nil, fmt.Errorf("listen %s: plain HTTP is only served on loopback; give --tls-cert/--tls-key, or --insecure behind a TLS-terminating proxy", cfg.Listen)
	}
	secrets, err := api.LoadSecrets(cfg.SecretsFile)
	if err != nil {
		return nil, err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		unlock()
		return nil, err
	}
	opened, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, storeFile))
	if err != nil {
		unlock()
		return nil, err
	}
	db := &lockedStore{DB: opened, unlock: unlock}
	c := &Controller{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Now,
		store:     db,
		loader:    loader.New(loader.Options{Timeout: cfg.LoadTimeout}),
		key:       key,
		reg:       prometheus.NewRegistry(),
		queue:     newQueue(),
		hook:      make(chan struct{}, 1),
		policy:    make(map[string]appliedClient),
		summaries: make(map[string]protocol.ClientStatus),
		timers:    make(map[string]*time.Timer),
		settling:  make(map[string]bool),
	}
	c.repoDir = cfg.RepoDir
	if cfg.Repo.URL != "" {
		c.repoDir = filepath.Join(cfg.DataDir, "repo")
	}
	c.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.metrics = metrics.New(c.reg)
	registerStoreMetrics(c.reg, db)
	c.api, err = api.New(api.Config{
		Store:      db,
		Secrets:    secrets,
		SigningKey: key.Public().(ed25519.PublicKey),
		Events:     events{c},
		Status:     func(ctx context.Context) (any, error) { return c.Status(ctx) },
		Registerer: c.reg,
		Now:        cfg.Now,
		MaxWait:    cfg.LongPollMax,
		Lease:      cfg.Lease,
		EnrollRate: cfg.EnrollRate,
		Logger:     cfg.Logger,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := c.restore(ctx); err != nil {
		db.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			db.Close()
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	c.ln = ln
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	mux.Handle("/", c.api.Handler())
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return c, nil
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the address the API listens on.
func (c *Controller) Addr() string { return c.ln.Addr().String() }

// Run serves until ctx ends, then drains: it stops accepting, answers
// waiting long-polls, lets re-plans finish and closes the store.
func (c *Controller) Run(ctx context.Context) error {
	defer c.store.Close()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		c.expireLoop(workCtx)
	}()
	go func() {
		defer wg.Done()
		// Two workers: re-plans of different clients overlap, while the keyed
		// queue keeps one client's re-plans in sequence.
		c.queue.Run(workCtx, max(2, runtime.GOMAXPROCS(0)), c.reconcile)
	}()
	go func() {
		defer wg.Done()
		c.follow(workCtx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- c.srv.Serve(c.ln) }()
	c.log.Info("patchd serving", "addr", c.Addr(), "repo", c.cfg.Repo.URL+c.cfg.RepoDir)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	c.api.Drain()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := c.srv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("shut down HTTP: %w", serr)
	}
	stopWork()
	wg.Wait()
	c.mu.Lock()
	for _, t := range c.timers {
		t.Stop()
	}
	c.mu.Unlock()
	c.log.Info("patchd stopped")
	return err
}

// expireInterval is how often jobs whose window closed unstarted are marked
// expired. Planning does not wait for it (a job past its not-after time is
// no longer in flight for the planner); it keeps the store's job states
// and the audit log current.
const expireInterval = 30 * time.Second

// expireLoop marks expired jobs until ctx ends.
func (c *Controller) expireLoop(ctx context.Context) {
	t := time.NewTicker(expireInterval)
	defer t.Stop()
	for {
		if n, err := c.store.ExpireJobs(ctx, c.now()); err != nil && ctx.Err() == nil {
			c.log.Error("expire jobs", "err", err)
		} else if n > 0 {
			c.log.Info("jobs expired unstarted; they are planned again in the next window", "jobs", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// events adapts the controller to the API's write notifications.
type events struct{ c *Controller }

func (e events) Enrolled(ctx context.Context, client, endpoint string) {}
func (e events) Reported(ctx context.Context, client, endpoint string) { e.c.replanSoon(client) }
func (e events) ResultRecorded(ctx context.Context, client, endpoint, job, ring string, results []store.UpdateResult) {
	for _, r := range results {
		e.c.metrics.JobResult(client, ring, r.Result)
	}
	e.c.queue.Add(client)
}

// reportSettle is how long a report waits before it re-plans its client,
// so that the reports of many endpoints of one client arriving together
// (every agent reports after a controller restart, or at the top of the
// hour) cost one re-plan instead of one each. Results and revisions do not
// wait: they may release the next ring or a new job at once.
const reportSettle = 250 * time.Millisecond

// replanSoon re-plans client once reportSettle has passed, folding in every
// report that arrives meanwhile.
func (c *Controller) replanSoon(client string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settling[client] {
		return
	}
	c.settling[client] = true
	time.AfterFunc(reportSettle, func() {
		c.mu.Lock()
		delete(c.settling, client)
		c.mu.Unlock()
		c.queue.Add(client)
	})
}

func (e events) GitHook(ctx context.Context) {
	select {
	case e.c.hook <- struct{}{}:
	default:
	}
}

// follow watches the fleet repo and applies each new head.
func (c *Controller) follow(ctx context.Context) {
	var evs <-chan source.Event
	if c.cfg.RepoDir != "" {
		ch, err := source.WatchDir(ctx, c.cfg.RepoDir, c.cfg.RepoBranch)
		if err != nil {
			c.setLastErr(err)
			c.log.Error("cannot watch the fleet repo", "dir", c.cfg.RepoDir, "err", err)
			return
		}
		evs = ch
	} else {
		cfg := c.cfg.Repo
		cfg.Dir = c.repoDir
		src, err := source.New(cfg)
		if err != nil {
			c.setLastErr(err)
			c.log.Error("cannot follow the fleet repo", "err", err)
			return
		}
		evs = src.Watch(ctx, c.cfg.Poll, c.hook)
	}
	for ev := range evs {
		if ev.Err != nil {
			c.setLastErr(ev.Err)
			c.log.Error("fleet repo fetch failed; keeping the applied policy", "err", ev.Err)
			continue
		}
		c.setLastErr(nil)
		c.apply(ctx, ev.Head)
	}
}

func (c *Controller) setLastErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = ""
	if err != nil {
		c.lastErr = err.Error()
	}
}

// apply verifies, loads and vets a new head and moves every client it can
// forward. Nothing from a refused revision reaches an endpoint: the
// policies change only after all checks pass.
func (c *Controller) apply(ctx context.Context, head plumbing.Hash) {
	c.mu.Lock()
	last, base := c.head, c.applied
	if head == base {
		// The branch went back to the revision that runs (a revert of
		// a refused head): nothing changes.
		c.head = head
	}
	c.mu.Unlock()
	if head == last || head == base {
		return
	}
	now := c.now()
	log := c.log.With("revision", head.String())
	if err := source.VerifyDir(c.repoDir, base, head, c.cfg.Verify); err != nil {
		var re *source.RefusedError
		if !errors.As(err, &re) {
			// Not a verdict on the revision (a missing object, an unreadable
			// keyring): try again on the next fetch.
			c.setLastErr(err)
			log.Error("verify fleet revision", "err", err)
			return
		}
		c.refuse(ctx, head, "", "verify", []string{re.Reason}, now)
		return
	}
	fleet, err := source.LoadRevision(ctx, c.loader, c.repoDir, head.String())
	if err != nil {
		c.refuse(ctx, head, "", "invalid", []string{err.Error()}, now)
		return
	}
	var rootProblems []string
	clientProblems := make(map[string][]string)
	for _, p := range fleet.Problems {
		if p.Level != schema.LevelError {
			continue
		}
		if p.Client == "" {
			rootProblems = append(rootProblems, p.String())
		} else {
			clientProblems[p.Client] = append(clientProblems[p.Client], p.String())
		}
	}
	if len(rootProblems) > 0 {
		c.refuse(ctx, head, "", "invalid", rootProblems, now)
		return
	}

	// Only clients whose policy changed are re-planned: a commit to one
	// client's directory must reach that client's agents without waiting
	// behind a re-plan of the whole fleet. Clients whose files did not
	// change keep their decisions; they move to the new revision for the
	// jobs they get from now on.
	c.mu.Lock()
	touched := make(map[string]bool)
	for id, cl := range fleet.Clients {
		if old, ok := c.policy[id]; !ok || old.client.Digest != cl.Digest {
			touched[id] = true
		} else if sum, ok := c.summaries[id]; ok {
			sum.Revision = fleet.Revision
			c.summaries[id] = sum
		}
		c.policy[id] = appliedClient{revision: fleet.Revision, client: cl}
	}
	for id := range c.policy {
		if _, ok := fleet.Clients[id]; !ok && clientProblems[id] == nil {
			// The client's directory is gone: its endpoints become
			// unknown-client, which is never a job.
			delete(c.policy, id)
			touched[id] = true
		}
	}
	c.head, c.applied = head, head
	c.mu.Unlock()

	// One transaction for every client's record (it also appends them to
	// the audit log).
	revs := make([]store.Revision, 0, len(fleet.Clients)+1)
	for _, id := range clientsSorted(fleet.Clients) {
		revs = append(revs, store.Revision{Hash: head.String(), Status: store.RevisionApplied, At: now, Client: id})
		c.metrics.Applied(id, head.String(), now)
	}
	revs = append(revs, store.Revision{Hash: head.String(), Status: store.RevisionApplied, At: now})
	if err := c.store.RecordRevisions(ctx, revs); err != nil {
		log.Error("record applied revision", "err", err)
	}
	c.metrics.Applied("", head.String(), now)
	for id, ps := range clientProblems {
		c.refuse(ctx, head, id, "invalid", ps, now)
		touched[id] = true
	}
	log.Info("policy revision applied", "clients", len(fleet.Clients), "clients_replanned", len(touched), "clients_refused", len(clientProblems))

	for id := range touched {
		c.queue.Add(id)
	}
}

// refuse records a refused revision, for the whole fleet (client "") or one
// client, which keeps running its last good revision.
func (c *Controller) refuse(ctx context.Context, head plumbing.Hash, client, reason string, problems []string, now time.Time) {
	c.mu.Lock()
	c.refused = &protocol.Refusal{Revision: head.String(), Client: client, Reason: reason, Problems: problems, At: now}
	if client == "" {
		// The branch head is refused: remember it so the same head is not
		// tried again on every poll, while c.policy stays as it was.
		c.head = head
	}
	c.mu.Unlock()
	c.record(ctx, store.Revision{Hash: head.String(), Status: store.RevisionRefused, At: now, Problems: problems, Client: client})
	c.metrics.Refused(client, reason, now)
	c.log.Error("policy revision refused; keeping the last good revision", "revision", head.String(), "client", client, "reason", reason, "problems", problems)
}

func (c *Controller) record(ctx context.Context, r store.Revision) {
	if err := c.store.RecordRevision(ctx, r); err != nil {
		c.log.Error("record revision", "revision", r.Hash, "client", r.Client, "err", err)
	}
}

// restore reloads, after a restart, the revision each client last ran, so
// a restart neither loses a client's policy nor jumps it to a head that was
// refused.
func (c *Controller) restore(ctx context.Context) error {
	revs, err := c.store.Revisions(ctx, 1)
	if err != nil {
		return fmt.Errorf("read applied revisions: %w", err)
	}
	byRev := make(map[string][]string)
	for _, cr := range revs.Clients {
		if cr.LastAttempted.Status == store.RevisionRefused {
			c.metrics.StillRefused(cr.Client, cr.LastAttempted.At)
		}
		if cr.LastApplied == nil {
			continue
		}
		c.metrics.Applied(cr.Client, cr.LastApplied.Hash, cr.LastApplied.At)
		if cr.LastAttempted.Status == store.RevisionRefused {
			// Applied clears the refused gauge; the newer refusal stands.
			c.metrics.StillRefused(cr.Client, cr.LastAttempted.At)
		}
		if cr.Client == "" {
			c.head = plumbing.NewHash(cr.LastApplied.Hash)
			c.applied = c.head
			continue
		}
		byRev[cr.LastApplied.Hash] = append(byRev[cr.LastApplied.Hash], cr.Client)
	}
	for rev, clients := range byRev {
		fleet, err := source.LoadRevision(ctx, c.loader, c.repoDir, rev)
		if err != nil {
			return fmt.Errorf("reload applied revision %s: %w", rev, err)
		}
		for _, id := range clients {
			if cl, ok := fleet.Clients[id]; ok {
				c.policy[id] = appliedClient{revision: rev, client: cl}
				c.queue.Add(id)
			}
		}
	}
	if len(revs.Refused) > 0 {
		r := revs.Refused[0]
		c.refused = &protocol.Refusal{Revision: r.Hash, Client: r.Client, Problems: r.Problems, At: r.At}
	}
	return nil
}

// reconcile re-plans one client and queues its new jobs.
func (c *Controller) reconcile(ctx context.Context, client string) {
	start := time.Now()
	now := c.now()
	log := c.log.With("client", client)
	snap, err := c.store.ClientSnapshot(ctx, client, now)
	if err != nil {
		c.metrics.ReconcileFailed("store")
		log.Error("read client state", "err", err)
		return
	}
	c.mu.Lock()
	pol, known := c.policy[client]
	c.mu.Unlock()
	fleet := &schema.Fleet{Revision: pol.revision, Clients: map[string]*schema.Client{}}
	if known {
		fleet.Clients[client] = pol.client
	}
	res, err := plan.Plan(fleet, snap, now, plan.Options{Decisions: true})
	if err != nil {
		c.metrics.ReconcileFailed("plan")
		log.Error("plan", "revision", pol.revision, "err", err)
		return
	}
	if len(res.Jobs) > 0 {
		created, err := c.store.CreateJobs(ctx, client, toStoreJobs(res.Jobs), now, c.signer(snap))
		if err != nil {
			c.metrics.ReconcileFailed("store")
			log.Error("create jobs", "err", err)
			return
		}
		perRing := make(map[string]int)
		endpoints := make([]string, 0, len(created))
		for _, j := range created {
			perRing[j.Ring]++
			endpoints = append(endpoints, j.Endpoint)
		}
		for ring, n := range perRing {
			c.metrics.JobsCreated(client, ring, n)
		}
		c.api.Notify(endpoints...)
		if len(created) > 0 {
			log.Info("jobs queued", "revision", pol.revision, "jobs", len(created))
		}
	}
	var cl *schema.Client
	if known {
		cl = pol.client
	}
	fig := c.metrics.Observe(client, cl, snap, res, now)
	c.summarise(client, pol.revision, known, len(snap.Endpoints), fig, res, now)
	wake := nextWake(res, now)
	if known {
		wake = earliest(wake, nextStale(snap, pol.client.StaleAfter, now), now)
	}
	c.wakeAt(client, wake)
	c.metrics.ReconcileDone(time.Since(start))
}

// toStoreJobs wraps the planner's jobs for the store.
func toStoreJobs(jobs []plan.Job) []store.Job {
	out := make([]store.Job, len(jobs))
	for i, j := range jobs {
		out[i] = store.Job{
			Endpoint: j.Endpoint, Client: j.Client, Ring: j.Ring, Updates: j.Updates,
			NotAfter: j.NotAfter, Reboot: string(j.Reboot), RebootDeadline: j.RebootDeadline,
			Revision: j.Revision, IdempotencyKey: j.IdempotencyKey,
		}
	}
	return out
}

// signer signs a job as the store creates it, with the details of each
// update the agent's backend needs.
func (c *Controller) signer(snap *protocol.Snapshot) store.Signer {
	updates := make(map[string]map[string]*protocol.Update)
	for _, ep := range snap.Endpoints {
		m := make(map[string]*protocol.Update, len(ep.Updates))
		for _, u := range ep.Updates {
			m[u.ID] = u
		}
		updates[ep.ID] = m
	}
	return func(j *store.Job) error {
		p := protocol.JobPayload{
			ID: j.ID, Endpoint: j.Endpoint, Seq: j.Seq, NotAfter: j.NotAfter,
			Reboot: j.Reboot, RebootDeadline: j.RebootDeadline,
			Revision: j.Revision, IdempotencyKey: j.IdempotencyKey,
		}
		for _, id := range j.Updates {
			u, ok := updates[j.Endpoint][id]
			if !ok {
				return fmt.Errorf("job for %s names update %s it does not report", j.Endpoint, id)
			}
			p.Updates = append(p.Updates, protocol.JobUpdate{ID: u.ID, Source: u.Source, Name: u.Name, Version: u.Version})
		}
		sj, err := protocol.SignJob(c.key, p)
		if err != nil {
			return err
		}
		j.Payload, j.Signature = sj.Payload, sj.Signature
		return nil
	}
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
	if staleAfter <= 0 {
		staleAfter = 7 * 24 * time.Hour
	}
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

// wakeAt arranges one re-plan of client at t (none when t is zero),
// replacing the one arranged before.
func (c *Controller) wakeAt(client string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.timers[client]; ok {
		old.Stop()
		delete(c.timers, client)
	}
	if t.IsZero() {
		return
	}
	// A second of slack so the re-plan runs after the boundary, not on it.
	d := t.Sub(c.now()) + time.Second
	c.timers[client] = time.AfterFunc(d, func() { c.queue.Add(client) })
}

// clientsSorted lists the keys of m in order.
func clientsSorted[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
