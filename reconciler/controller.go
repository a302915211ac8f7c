package reconciler

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/reconciler/api"
	"github.com/patchline/patchline/reconciler/commitstatus"
	"github.com/patchline/patchline/reconciler/feeds"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema/loader"
)

// Controller is a running patchd: it owns the configuration, the data
// directory, the store, the listeners (the API's and the metrics') and
// the lifecycle of the parts that do the work (revisions, replanner, the
// API).
type Controller struct {
	cfg     Config
	log     *slog.Logger
	clock   clock.Clock
	store   *lockedStore
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	api     *api.Server
	queue   *queue
	ln      net.Listener
	srv     *http.Server
	// metricsLn and metricsSrv serve /metrics, apart from the API.
	metricsLn  net.Listener
	metricsSrv *http.Server

	revisions *revisions
	replanner *replanner
	// feeds keeps the vulnerability feeds; nil without Config.FeedsDir.
	feeds *feedKeeper
	// releases are the agent releases offered (--agent-releases).
	releases *releaseOffer
	// commitStatus posts commit statuses; nil without Config.Status.
	commitStatus *commitstatus.Notifier
	// follow starts following the fleet repo.
	follow follower
	// fetchOnce fetches the fleet repo by URL into its clone once; nil
	// for a local repo (Config.RepoDir).
	fetchOnce func(ctx context.Context) error
	// hook carries webhook triggers to the source; buffered by one so a
	// burst of pushes becomes one pending fetch.
	hook chan struct{}

	// lease is the store's leader lease; nil with SQLite, where this
	// patchd always leads (leader.go).
	lease leaseStore
	// instance names this run of the replica in the lease.
	instance string
	// leading is true while this replica leads.
	leading      atomic.Bool
	leaderMetric *metrics.Leader
	// fencedCh takes the store's refusals of leader-only writes (fenced);
	// buffered by one.
	fencedCh chan struct{}
	// replicas carries notifications between the replicas on a
	// PostgreSQL store (notify.go); nil with SQLite.
	replicas *replicaBus
}

// New checks cfg, locks the data directory, opens the store and the
// signing key, restores the revisions the clients ran, and listens. Run
// starts the work.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Without a secrets file, every admin token is in the store: the
	// first start makes one (bootstrapAdmin).
	var secrets *api.Secrets
	if cfg.SecretsFile != "" {
		if secrets, err = api.LoadSecrets(cfg.SecretsFile); err != nil {
			return nil, err
		}
	}
	c := &Controller{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		reg:      prometheus.NewRegistry(),
		queue:    newQueue(cfg.Clock),
		hook:     make(chan struct{}, 1),
		fencedCh: make(chan struct{}, 1),
		instance: newInstance(cfg.ReplicaName),
	}
	repoDir, err := c.newFollower()
	if err != nil {
		return nil, err
	}
	key, err := c.openDataDir(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.build(ctx, secrets, key, repoDir); err != nil {
		c.store.Close()
		return nil, err
	}
	if err := c.listen(); err != nil {
		c.store.Close()
		return nil, err
	}
	if secrets == nil {
		if err := c.bootstrapAdmin(ctx, c.store); err != nil {
			c.ln.Close()
			c.metricsLn.Close()
			c.store.Close()
			return nil, err
		}
	}
	return c, nil
}

// newFollower checks the fleet repo's configuration and sets how it is
// followed; it returns the directory revisions are read from.
func (c *Controller) newFollower() (repoDir string, err error) {
	if c.cfg.RepoDir != "" {
		dir, branch := c.cfg.RepoDir, c.cfg.RepoBranch
		c.follow = func(ctx context.Context) (<-chan source.Event, error) { return source.WatchDir(ctx, dir, branch) }
		return dir, nil
	}
	rc := c.cfg.Repo
	rc.Dir = filepath.Join(c.cfg.DataDir, "repo")
	src, err := source.New(rc)
	if err != nil {
		return "", err
	}
	c.follow = func(ctx context.Context) (<-chan source.Event, error) { return src.Watch(ctx, c.cfg.Poll, c.hook), nil }
	c.fetchOnce = func(ctx context.Context) error { _, _, err := src.Fetch(ctx); return err }
	return rc.Dir, nil
}

// cloneTimeout bounds the fetch cloneForRestore waits for at start.
const cloneTimeout = 2 * time.Minute

// cloneForRestore fetches the fleet repo once, before the revisions the
// clients ran are restored from it, when the data directory has no clone
// yet but the store has applied revisions: a patchd on a new data
// directory beside a PostgreSQL store (another replica, a new machine),
// or a backup restored onto a new machine. Without the clone every client
// would be refused at start, and stay so until the next commit. A fetch
// that fails is logged, and restore then refuses the clients it cannot
// read, as for any revision it cannot evaluate.
func (c *Controller) cloneForRestore(ctx context.Context, repoDir string) {
	if c.fetchOnce == nil {
		return
	}
	if _, err := os.Stat(repoDir); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	// An error here is restore's to report.
	if revs, err := c.store.Revisions(ctx, 0); err != nil || len(revs.Clients) == 0 {
		return
	}
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, cloneTimeout)
	defer cancel()
	if err := c.fetchOnce(fctx); err != nil {
		c.log.Warn("the store holds applied revisions but the data directory has no clone of the fleet repo, and fetching it failed; "+
			"clients whose revision cannot be read are refused until a commit loads them", "err", err)
		return
	}
	c.log.Info("cloned the fleet repo to restore the revisions the store holds", "dir", repoDir, "took", time.Since(start))
}

// build wires the parts together and restores the revisions the clients
// ran before a restart.
func (c *Controller) build(ctx context.Context, secrets *api.Secrets, key ed25519.PrivateKey, repoDir string) error {
	c.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.metrics = metrics.New(c.reg)
	registerStoreMetrics(c.reg, c.store.stats)
	var fencedWrites func() int64
	if c.lease != nil {
		fencedWrites = c.lease.FencedWrites
	}
	c.leaderMetric = metrics.NewLeader(c.reg, c.cfg.ReplicaName, fencedWrites)
	if c.lease == nil {
		// The embedded store has one patchd, which leads from the start.
		c.setLeading(true)
	}
	var err error
	if c.commitStatus, err = commitstatus.New(c.cfg.Status, commitstatus.Options{Clock: c.clock, Logger: c.log, Registerer: c.reg}); err != nil {
		return err
	}
	c.revisions = &revisions{
		clock: c.clock, log: c.log, store: c.store, metrics: c.metrics, queue: c.queue, commitStatus: c.commitStatus,
		loader:      loader.New(loader.Options{Evaluator: c.cfg.Evaluator, Timeout: c.cfg.EvalTimeout, MemoryLimit: c.cfg.EvalMemory}),
		verify:      c.cfg.Verify,
		repoDir:     repoDir,
		policy:      make(map[string]appliedClient),
		lastRefusal: make(map[string]store.Revision),
	}
	c.replanner = newReplanner(c.clock, c.log, c.store, c.revisions, c.metrics, key, c.queue)
	c.replanner.commitStatus = c.commitStatus
	if err := c.replanner.loadHalts(ctx); err != nil {
		return err
	}
	if c.cfg.FeedsDir != "" {
		c.feeds = &feedKeeper{
			dir: c.cfg.FeedsDir, sync: c.cfg.FeedsSync, clock: c.clock, log: c.log, metrics: metrics.NewFeeds(c.reg),
			fetch: feeds.DefaultFetchConfig(c.clock.Now().Year()), replanAll: c.replanAll,
		}
		c.feeds.fetch.Clock = c.clock
		// Loaded before the first re-plan, so no client is planned
		// without the feeds and again with them at start.
		c.feeds.load(ctx)
		c.replanner.feeds = c.feeds
	}
	if c.releases, err = openReleases(c.cfg.AgentReleases, c.log); err != nil {
		return err
	}
	c.replanner.agentReleases = c.releases.check
	var releases api.Releases
	if c.releases.dir != nil {
		releases = c.releases.dir
	}
	c.api, err = api.New(api.Config{
		Releases:   releases,
		Store:      c.store,
		Secrets:    secrets,
		SigningKey: key.Public().(ed25519.PublicKey),
		Events:     events{c},
		Status:     c.Status,
		Ready:      c.store.health.ready,
		Registerer: c.reg,
		Now:        c.clock.Now,
		MaxWait:    c.cfg.LongPollMax,
		Lease:      c.cfg.Lease,
		EnrollRate: c.cfg.EnrollRate,
		Logger:     c.log,
	})
	if err != nil {
		return err
	}
	c.replanner.notify = c.api.Notify
	if n, ok := c.store.controllerStore.(notifier); ok {
		c.replicas = newReplicaBus(c, n)
	}
	c.cloneForRestore(ctx, repoDir)
	return c.revisions.restore(ctx)
}

// The metrics server's limits: a scrape sends no body and reads a page of
// text.
const (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second
	metricsIdleTimeout  = 2 * time.Minute
)

// listen opens the API's listener and the metrics', with TLS when
// configured: both follow the same rule (see Config.TLSCert).
func (c *Controller) listen() error {
	var tlsConfig *tls.Config
	if c.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.cfg.TLSCert, c.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := listenOn(c.cfg.Listen, tlsConfig)
	if err != nil {
		return err
	}
	metricsLn, err := listenOn(c.cfg.MetricsListen, tlsConfig)
	if err != nil {
		ln.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	c.ln, c.metricsLn = ln, metricsLn
	c.srv = c.api.HTTPServer()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	// The probes answer here too, for a supervisor that reaches only the
	// metrics address.
	mux.HandleFunc("GET "+api.PathHealthz, api.Healthz)
	mux.Handle("GET "+api.PathReadyz, api.Readyz(c.store.health.ready))
	c.metricsSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	return nil
}

// listenOn listens on addr, with TLS when tlsConfig is not nil.
func listenOn(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

// Addr is the address the API listens on.
func (c *Controller) Addr() string { return c.ln.Addr().String() }

// MetricsAddr is the address /metrics is served on.
func (c *Controller) MetricsAddr() string { return c.metricsLn.Addr().String() }

// Run serves until ctx ends, then drains: it stops accepting, answers
// waiting long-polls, lets re-plans finish, stops the timers and closes the
// store.
func (c *Controller) Run(ctx context.Context) error {
	defer c.store.Close()
	defer c.releases.close()
	// The work outlives ctx by the drain below: it stops only once the
	// server no longer takes requests that would queue more of it.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { c.lead(workCtx) })
	if c.replicas != nil {
		wg.Go(func() { c.replicas.run(workCtx) })
	}
	wg.Go(func() { c.commitStatus.Run(workCtx) })
	if c.feeds != nil {
		wg.Go(func() { c.feeds.run(workCtx) })
	}
	// Each server's Serve returns when Shutdown below closes it, so
	// these goroutines end with Run; the channel has room for both.
	serveErr := make(chan error, 2)
	go func() { serveErr <- c.srv.Serve(c.ln) }()
	go func() { serveErr <- fmt.Errorf("metrics: %w", c.metricsSrv.Serve(c.metricsLn)) }()
	c.log.Info("patchd serving", "addr", c.Addr(), "metrics", c.MetricsAddr(), "repo", c.cfg.Repo.URL+c.cfg.RepoDir)

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
	if serr := c.metricsSrv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("shut down metrics HTTP: %w", serr)
	}
	stopWork()
	wg.Wait()
	c.replanner.stop()
	c.log.Info("patchd stopped")
	return err
}

// workers is how many re-plans run at once: two at least, so re-plans of
// different clients overlap, while the keyed queue keeps one client's
// re-plans in sequence.
func (c *Controller) workers() int { return max(2, runtime.GOMAXPROCS(0)) }

// replanAll queues every client the controller knows: those with a policy
// and those with endpoints but none. Only the leader plans; a replica
// that takes the lead later re-plans every client then.
func (c *Controller) replanAll() {
	if !c.leads() {
		return
	}
	for _, id := range c.revisions.clients() {
		c.queue.Add(id)
	}
	for _, cs := range c.replanner.statuses() {
		c.queue.Add(cs.Client)
	}
}

// expireInterval is how often jobs whose window closed unstarted are marked
// expired. Planning does not wait for it (a job past its not-after time is
// no longer in flight for the planner); it keeps the store's job states
// and the audit log current.
const expireInterval = 30 * time.Second

// expireLoop marks expired jobs until ctx ends.
func (c *Controller) expireLoop(ctx context.Context) {
	for {
		n, err := c.store.ExpireJobs(ctx, c.clock.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Error("expire jobs", "err", err)
		case n > 0:
			c.log.Info("jobs expired unstarted; they are planned again in the next window", "jobs", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(expireInterval):
		}
	}
}
