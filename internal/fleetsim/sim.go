package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/protocol"
)

// Agents start in batches: a listen backlog holds a few thousand
// connections, and 10,000 agents dialling in the same millisecond would
// overflow it and wait out TCP's one-second SYN retry instead of measuring
// the controller.
const (
	startBatch = 250
	startEvery = 50 * time.Millisecond
)

// How often the simulator reads the controller's status and metrics.
const (
	statusEvery = 500 * time.Millisecond
	rssEvery    = 2 * time.Second
)

// commitTimeout bounds the wait for the first job after one commit.
const commitTimeout = 30 * time.Second

// Options configure a simulation.
type Options struct {
	// Controller is the controller's base URL, or the URLs of its
	// replicas separated by commas. Every agent gets the whole list, each
	// starting at another replica (agent i at replica i mod n), so the
	// fleet spreads over the replicas; the status is read from, and the
	// webhooks are sent to, the first.
	Controller string
	// Metrics is the URL of the controller's metrics (its
	// --metrics-listen address and /metrics), or those of its replicas
	// separated by commas, read for their memory; empty means the
	// controller's memory is not measured.
	Metrics string
	// Secrets are the enrollment secrets, the admin token (for
	// /v1/status) and the webhook secret.
	Secrets *protocol.SecretsFile
	// Clients and Endpoints size the simulated fleet: endpoint i belongs to
	// client plangen.ClientID(i % Clients).
	Clients   int
	Endpoints int
	// Updates is how many updates each endpoint is missing at start
	// (HeldUpdate, held back by the generated fleet, comes on top).
	Updates int
	// FailureRate is the chance that one simulated install fails.
	FailureRate float64
	// Duration bounds the whole simulation.
	Duration time.Duration
	// StateDir is where the agents' state directories go (a fresh
	// directory under it, removed at the end); empty means the system's
	// temporary directory.
	StateDir string
	// RepoDir and Commits: after convergence, release HeldUpdate in
	// Commits clients, one commit to the fleet repo at RepoDir and one
	// webhook each, and time each push to its first job.
	RepoDir string
	Commits int
	// Progress receives progress: a redrawn bar when Terminal, else a
	// line every few seconds. Nil means none.
	Progress io.Writer
	Terminal bool
}

// Summary is what a simulation measured.
type Summary struct {
	Agents, Clients int
	Enrolled        int
	Reported        int
	Converged       bool
	// ConvergeTime is from the first agent's start to the controller
	// reporting every client compliant; AllReported from the start to the
	// last agent's first report.
	ConvergeTime time.Duration
	AllReported  time.Duration
	Elapsed      time.Duration
	// Reports is the number of inventory reports acknowledged; ReportRate
	// those of the first wave (every agent's first report) per second from
	// the first to the last; PeakReportRate the most in one second.
	Reports        int
	ReportRate     float64
	PeakReportRate int
	CheckIn        Percentiles
	// JobWait is, per ring, from the agent's last acknowledged report to
	// its next job: the controller's reaction, plus the wait for earlier
	// rings outside canary.
	JobWait        map[string]Percentiles
	Jobs           int
	InstallsOK     int
	InstallsFailed int
	// CommitToJob is from a commit landing in the fleet repo (the webhook
	// sent right after) to the first job for the update it releases
	// reaching an agent.
	CommitToJob Percentiles
	Errors      map[string]int
	// ControllerRSS is the controller's peak resident memory seen on its
	// metrics (0 without Options.Metrics), the largest replica's with
	// several; ReplicaRSS is each one's, in the order of Options.Metrics;
	// SimulatorRSS this process's peak.
	ControllerRSS int64
	ReplicaRSS    []int64
	SimulatorRSS  int64
	// Halted lists rollouts the controller halted, as client/update/ring.
	Halted []string
}

// Run simulates the fleet until the controller reports every client
// compliant (then measures commit-to-job latency, when asked) or until
// opts.Duration passes, and returns what it measured. Not converging is
// not an error: the summary says so.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	base, err := os.MkdirTemp(opts.StateDir, "patchline-sim-*")
	if err != nil {
		return nil, fmt.Errorf("agents' state directory: %w", err)
	}
	defer os.RemoveAll(base)

	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	agentsCtx, stopAgents := context.WithCancel(ctx)
	defer stopAgents()

	start := time.Now()
	col := newCollector(opts.Endpoints, start)
	p := newProbe(opts.Controller, opts.Metrics, opts.Secrets)
	var wg sync.WaitGroup
	launchErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		launchErr <- launch(agentsCtx, &wg, opts, base, col)
	}()

	sum := &Summary{Agents: opts.Endpoints, Clients: opts.Clients, JobWait: map[string]Percentiles{}}
	w := newWatch(opts, col, p, sum)
	runErr := w.untilConverged(ctx, launchErr)
	if runErr == nil && sum.Converged && opts.Commits > 0 {
		runErr = w.commitLatency(ctx)
	}
	col.stop()
	stopAgents()
	wg.Wait()
	w.finish()
	sum.Elapsed = time.Since(start)
	col.summarise(sum)
	sum.SimulatorRSS = selfRSS()
	return sum, runErr
}

func (o *Options) check() error {
	switch {
	case o.Controller == "":
		return errors.New("sim: no controller URL")
	case o.Secrets == nil:
		return errors.New("sim: no secrets")
	case o.Clients < 1 || o.Endpoints < 1:
		return fmt.Errorf("sim: need at least one client and one endpoint (clients %d, endpoints %d)", o.Clients, o.Endpoints)
	case o.Updates < 0:
		return fmt.Errorf("sim: updates %d is negative", o.Updates)
	case o.FailureRate < 0 || o.FailureRate > 1:
		return fmt.Errorf("sim: failure rate %v is not between 0 and 1", o.FailureRate)
	case o.Duration <= 0:
		return fmt.Errorf("sim: duration %v must be positive", o.Duration)
	case o.Commits > o.Clients:
		return fmt.Errorf("sim: %d commits need as many clients; there are %d", o.Commits, o.Clients)
	case o.Commits > 0 && o.RepoDir == "":
		return errors.New("sim: measuring commit-to-job latency needs the fleet repo directory")
	}
	for _, c := range adminclient.SplitURLs(o.Controller) {
		u, err := url.Parse(c)
		if err != nil || u.Host == "" {
			return fmt.Errorf("sim: controller URL %q: want something like https://patchd.msp.example:8420", c)
		}
		if netaddr.InClear(u) {
			return fmt.Errorf("sim: controller URL %q: plain http would send the admin token and enrollment secrets in clear; use https://, or an SSH tunnel to the controller", c)
		}
	}
	if o.Metrics != "" {
		for _, m := range adminclient.SplitURLs(o.Metrics) {
			if u, err := url.Parse(m); err != nil || u.Host == "" {
				return fmt.Errorf("sim: metrics URL %q: want something like http://127.0.0.1:9420/metrics", m)
			}
		}
	}
	for i := range o.Clients {
		if o.Secrets.Enrollment[plangen.ClientID(i)] == "" {
			return fmt.Errorf("sim: the secrets file has no enrollment secret for client %q; generate the fleet and secrets with `patchctl fleet generate`", plangen.ClientID(i))
		}
	}
	return nil
}

// launch starts every agent, in batches, and returns once all have
// started; wg counts the running agents.
func launch(ctx context.Context, wg *sync.WaitGroup, opts Options, base string, col *collector) error {
	tick := time.NewTicker(startEvery)
	defer tick.Stop()
	for i := range opts.Endpoints {
		if i > 0 && i%startBatch == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		a, err := newAgent(ctx, opts, base, i, col)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(ctx); err != nil {
				col.mu.Lock()
				if !col.stopped {
					col.errors["agent stopped: "+errorClass(err.Error())]++
				}
				col.mu.Unlock()
			}
		}()
	}
	return nil
}

// agentsPerSourceAddr is how many simulated agents share one loopback
// source address: one address has about 28,000 ephemeral ports towards
// the controller's address and port, and every agent holds a long-poll
// connection and opens others.
const agentsPerSourceAddr = 20000

// sourceAddr is the loopback address agent i connects from when the fleet
// is larger than one address carries and the controller is on loopback:
// 127.0.0.1, 127.0.0.2, ... in turn. It is the zero Addr (the system's
// choice) otherwise.
func sourceAddr(opts Options, i int) netip.Addr {
	n := (opts.Endpoints + agentsPerSourceAddr - 1) / agentsPerSourceAddr
	if n <= 1 {
		return netip.Addr{}
	}
	u, err := url.Parse(adminclient.SplitURLs(opts.Controller)[0])
	if err != nil {
		return netip.Addr{}
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.Is4() || !ip.IsLoopback() {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%n)})
}

// controllerFor is the controller URL list agent i is given: the
// replicas of opts.Controller starting at replica i mod n and wrapping
// around, so that n replicas each hold a share of the fleet and an agent
// still knows them all.
func controllerFor(opts Options, i int) string {
	urls := adminclient.SplitURLs(opts.Controller)
	k := i % len(urls)
	rotated := append(slices.Clone(urls[k:]), urls[:k]...)
	return strings.Join(rotated, ",")
}

// newAgent builds the i-th simulated endpoint: its client and ring, an OS
// family (seven in ten Windows, the rest Debian or macOS; canaries are
// always Windows), a simulated backend seeded by i, and a real agent.
func newAgent(ctx context.Context, opts Options, base string, i int, col *collector) (*agent.Agent, error) {
	c, j := i%opts.Clients, i/opts.Clients
	client := plangen.ClientID(c)
	ring := "broad"
	switch {
	case j%20 == 0:
		ring = "canary"
	case j%20 <= 4:
		ring = "pilot"
	}
	family, version := "windows", "10.0.26100"
	switch j % 10 {
	case 7, 8:
		family, version = "linux", "12"
	case 9:
		family, version = "macos", "15.3"
	}
	labels := map[string]string{"ring": ring}
	if j%25 == 3 {
		labels["role"] = "sql"
	}
	dir := filepath.Join(base, fmt.Sprintf("ep-%06d", i))
	// The simulated machine's packages live in memory: these agents never
	// restart, and writing them out after every install was a tenth of the
	// simulator's CPU, taken from the controller it shares the machine with.
	// The agent's own state (enrollment, outbox, report sequence) is
	// written to dir as on a real endpoint.
	sb, err := sim.New(sim.Options{Seed: uint64(i) + 1, Family: family, FailureRate: opts.FailureRate})
	if err != nil {
		return nil, fmt.Errorf("endpoint %d: %w", i, err)
	}
	ups, err := sb.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("endpoint %d: %w", i, err)
	}
	sa := simAgent{i: i, client: client, ring: ring}
	a, err := agent.New(agent.Config{
		Controller:   controllerFor(opts, i),
		Client:       client,
		EnrollSecret: opts.Secrets.Enrollment[client],
		StateDir:     dir,
		Hostname:     fmt.Sprintf("sim-%s-%05d", client, j),
		OS:           protocol.OS{Family: family, Version: version},
		Labels:       labels,
		Backend:      &observedBackend{Backend: sb, c: col, a: sa, visible: chooseVisible(ups, opts.Updates)},
		SourceAddr:   sourceAddr(opts, i),
		// Agents on a LAN next to their controller: retry sooner than
		// the defaults meant for endpoints across the internet.
		RetryWaitMin: 250 * time.Millisecond,
		RetryWaitMax: 5 * time.Second,
		Logger:       slog.New(agentLog{c: col, a: sa}),
	})
	if err != nil {
		return nil, fmt.Errorf("endpoint %d: %w", i, err)
	}
	return a, nil
}

// watch follows the controller while the agents run.
type watch struct {
	opts    Options
	col     *collector
	probe   *probe
	sum     *Summary
	clients []string
	bar     *progress
	// rssDone stops the RSS sampler; rssPeak is written by it and read
	// after it stopped.
	rssDone chan struct{}
	rssWait sync.WaitGroup
	rssPeak []int64
	status  statusView
}

// statusView is the part of /v1/status the progress line shows.
type statusView struct {
	endpoints, drifting, compliant int
	err                            string
}

func newWatch(opts Options, col *collector, p *probe, sum *Summary) *watch {
	w := &watch{opts: opts, col: col, probe: p, sum: sum, rssDone: make(chan struct{}), bar: newProgress(opts.Progress, opts.Terminal)}
	for i := range opts.Clients {
		w.clients = append(w.clients, plangen.ClientID(i))
	}
	if opts.Metrics != "" {
		w.rssWait.Add(1)
		go w.sampleRSS()
	}
	return w
}

func (w *watch) sampleRSS() {
	defer w.rssWait.Done()
	t := time.NewTicker(rssEvery)
	defer t.Stop()
	w.rssPeak = make([]int64, len(w.probe.metrics))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), rssEvery)
		for k, m := range w.probe.metrics {
			if rss, err := w.probe.rss(ctx, m); err == nil {
				w.rssPeak[k] = max(w.rssPeak[k], rss)
			}
		}
		cancel()
		select {
		case <-w.rssDone:
			return
		case <-t.C:
		}
	}
}

// untilConverged polls the controller's status until every client is
// compliant with all agents counted, twice in a row (a status planned
// between a report's arrival and its storage could show a client compliant
// a moment too early), or until ctx ends.
func (w *watch) untilConverged(ctx context.Context, launchErr <-chan error) error {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	var candidate time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-launchErr:
			if err != nil {
				return err
			}
			launchErr = nil
		case <-t.C:
		}
		now := time.Now()
		ok := w.poll(ctx)
		w.bar.draw(w.line(false))
		switch {
		case !ok:
			candidate = time.Time{}
		case candidate.IsZero():
			candidate = now
		default:
			w.sum.Converged = true
			w.sum.ConvergeTime = candidate.Sub(w.col.start)
			w.bar.draw(w.line(true))
			return nil
		}
	}
}

// poll reads the status once and says whether the fleet has converged.
func (w *watch) poll(ctx context.Context) bool {
	st, err := w.probe.status(ctx)
	if err != nil {
		w.status.err = err.Error()
		return false
	}
	byClient := make(map[string]protocol.ClientStatus, len(st.Clients))
	for _, cs := range st.Clients {
		byClient[cs.Client] = cs
	}
	w.col.mu.Lock()
	allReported := w.col.nReported == len(w.col.reported)
	firstReports := make(map[string]time.Time, len(w.col.lastFirstReport))
	for k, v := range w.col.lastFirstReport {
		firstReports[k] = v
	}
	w.col.mu.Unlock()
	v := statusView{}
	converged := allReported
	for _, id := range w.clients {
		cs, ok := byClient[id]
		v.endpoints += cs.Endpoints
		v.drifting += cs.Drifting
		v.compliant += cs.Compliant
		if !ok || !cs.Known || cs.Drifting > 0 || cs.PlannedAt.Before(firstReports[id]) {
			converged = false
		}
	}
	if v.endpoints < w.opts.Endpoints {
		converged = false
	}
	w.status = v
	return converged
}

// commitLatency releases HeldUpdate client by client: one commit, one
// webhook, then the wait for the first job carrying the update.
func (w *watch) commitLatency(ctx context.Context) error {
	var samples []time.Duration
	defer func() { w.sum.CommitToJob = percentiles(samples) }()
	for k := range w.opts.Commits {
		client := plangen.ClientID(k)
		_, err := CommitFiles(w.opts.RepoDir, map[string][]byte{plangen.ExclusionsPath(k): plangen.ExclusionsFile(k, "")},
			fmt.Sprintf("Release %s for %s", HeldUpdate, client))
		if err != nil {
			return err
		}
		pushed := time.Now()
		if err := w.probe.webhook(ctx); err != nil {
			return err
		}
		timeout := time.NewTimer(commitTimeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				timeout.Stop()
				return nil
			case <-timeout.C:
				w.col.mu.Lock()
				w.col.errors["no job within "+commitTimeout.String()+" of a commit"]++
				w.col.mu.Unlock()
				break wait
			case got := <-w.col.held:
				if got == client {
					samples = append(samples, time.Since(pushed))
					timeout.Stop()
					break wait
				}
			}
		}
		w.bar.draw(fmt.Sprintf("commit-to-job: %d/%d commits", k+1, w.opts.Commits))
	}
	return nil
}

// finish stops the sampler and records what the watch saw.
func (w *watch) finish() {
	close(w.rssDone)
	w.rssWait.Wait()
	for _, rss := range w.rssPeak {
		w.sum.ControllerRSS = max(w.sum.ControllerRSS, rss)
	}
	if len(w.rssPeak) > 1 {
		w.sum.ReplicaRSS = w.rssPeak
	}
	st, err := w.probe.status(context.Background())
	if err == nil {
		for _, cs := range st.Clients {
			for _, h := range cs.Halted {
				w.sum.Halted = append(w.sum.Halted, cs.Client+"/"+h.Update+"/"+h.Ring)
			}
		}
	}
	w.bar.done()
}

// line is the progress text.
func (w *watch) line(final bool) string {
	w.col.mu.Lock()
	enrolled, reported, jobs := w.col.nEnrolled, w.col.nReported, w.col.jobs
	w.col.mu.Unlock()
	n := w.opts.Endpoints
	s := fmt.Sprintf("%5.1fs  enrolled %d/%d  reported %d/%d  jobs %d  drifting %d  compliant %d",
		time.Since(w.col.start).Seconds(), enrolled, n, reported, n, jobs, w.status.drifting, w.status.compliant)
	if w.status.err != "" && !final {
		s += "  (status: " + w.status.err + ")"
		w.status.err = ""
	}
	if final {
		s += "  converged"
	}
	return s
}

// summarise copies the collector's figures into sum.
func (c *collector) summarise(sum *Summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum.Enrolled, sum.Reported = c.nEnrolled, c.nReported
	if !c.allReportedAt.IsZero() {
		sum.AllReported = c.allReportedAt.Sub(c.start)
		if d := c.allReportedAt.Sub(c.firstReportAt); d > 0 {
			sum.ReportRate = float64(len(c.reported)) / d.Seconds()
		}
	}
	sum.Reports = c.reports
	for _, n := range c.reportsPerSec {
		sum.PeakReportRate = max(sum.PeakReportRate, n)
	}
	sum.CheckIn = percentiles(c.checkIn)
	for ring, ds := range c.jobWait {
		sum.JobWait[ring] = percentiles(ds)
	}
	sum.Jobs, sum.InstallsOK, sum.InstallsFailed = c.jobs, c.installsOK, c.installsFailed
	sum.Errors = make(map[string]int, len(c.errors))
	for k, v := range c.errors {
		sum.Errors[k] = v
	}
}
