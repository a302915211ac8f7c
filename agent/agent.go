// Package agent is the Patchline endpoint agent: it enrolls with the
// controller once, reports the endpoint's inventory, long-polls for signed
// jobs, verifies them against the controller key pinned at enrollment, runs
// them through a package backend and delivers each result through a durable
// outbox.
//
// Delivery is at least once and the effect exactly once. Every job the
// agent accepts goes through its journal in the state directory:
//
//  1. the job's sequence number is stored (a replay of it is refused);
//  2. a "started" entry is written, before the backend installs anything;
//  3. the result is written into the same entry, which puts it in the
//     outbox and marks the idempotency key finished in one atomic write;
//  4. the result is sent, and the entry marked acknowledged on a 2xx.
//
// A crash between 3 and 4 leaves the result in the outbox; the next start
// sends it before polling again, and a re-delivered job is answered from the
// journal, never installed twice. A crash during 2–3 (the backend was
// installing) is not run again: re-running an install blindly could
// repeat a half-done change. After the restart the agent first reports its
// inventory, then sends the job's result with every update's outcome
// unknown (protocol.ResultUnknown) and the number of that report. The
// controller learns from the inventory what the interrupted job did
// install, and plans a new job for what is still missing.
//
// Inventory and WriteInventory show what the endpoint would report
// without any controller (`patch-agent inventory`).
//
// The agent shares only package protocol with the controller: the wire
// types and the state vocabulary.
package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/agent/reboot"
	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/protocol"
)

// pollWait is how long the controller may hold a job long-poll open.
const pollWait = 30 * time.Second

// minPollGap spaces polls that come back empty at once (a proxy cutting the
// long-poll short), so such a network cannot make agents hammer the
// controller.
const minPollGap = time.Second

// maxOutput bounds the package tool output kept per update; the end of the
// output, where tools print their errors, is kept.
const maxOutput = 4 << 10

// Defaults for the zero values of Config.
const (
	DefaultReportInterval = time.Hour
	DefaultRetryMax       = 8
	DefaultRetryWaitMin   = time.Second
	DefaultRetryWaitMax   = time.Minute
)

// Clock is the agent's source of time. Tests pass one that does not sleep.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, and returns ctx.Err() in the
	// latter case.
	Sleep(ctx context.Context, d time.Duration) error
}

// Runner runs a command (the reboot command), argv[0] being the program.
type Runner func(ctx context.Context, argv []string) error

// Config is everything the agent needs; cmd/patch-agent fills it from flags.
type Config struct {
	// Controller is the controller's base URL, or the URLs of its
	// replicas separated by commas ("https://a:8420,https://b:8420"):
	// calls go to one until it is unreachable, then move to the next (see
	// client). Plain http is refused unless the host is loopback or
	// Insecure is set.
	Controller string
	Insecure   bool
	// RootCAs verifies the controller's certificate; nil means the system
	// pool.
	RootCAs *x509.CertPool
	// SourceAddr, when valid, is the local address connections to the
	// controller leave from: a host with several addresses that must use
	// one, or the fleet simulator spreading its agents over loopback
	// addresses (one address has about 28,000 ephemeral ports towards one
	// controller address and port).
	SourceAddr netip.Addr

	// Client and EnrollSecret are needed only for the first enrollment.
	Client       string
	EnrollSecret string

	// StateDir holds the identity, the pinned controller key, the highest
	// job sequence number and the journal. It is created with mode 0700.
	StateDir string

	Hostname string
	OS       protocol.OS
	Labels   map[string]string

	Backend backend.Backend
	// SelfUpdate installs the agent updates jobs carry; nil refuses them
	// (no release key pinned).
	SelfUpdate *selfupdate.Updater

	// ReportInterval is how often the inventory is reported besides at
	// start and after each job; ±10% jitter is added. Default 1h.
	ReportInterval time.Duration
	// RebootCommand is run when a job's reboot policy calls for a reboot.
	// Empty means the agent only logs that a reboot is needed (or, on a
	// simulated endpoint, simulates it).
	RebootCommand []string
	// Notifier warns and asks the people at the endpoint about reboots
	// (see agent/reboot); nil means the backend when it records prompts
	// itself (sim), else the OS's own (notify.ForOS).
	Notifier notify.Notifier

	// RetryMax, RetryWaitMin and RetryWaitMax bound the retries of each
	// HTTP call; zero values take the defaults above.
	RetryMax     int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration

	// Logger, Clock and Runner default to slog.Default(), the system clock
	// and os/exec.
	Logger *slog.Logger
	Clock  Clock
	Runner Runner
}

// Agent is one endpoint's agent. Its methods are not safe for concurrent
// use: Run owns it.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	run     Runner
	api     *client
	journal *journal
	// reboots plans and carries out the reboots jobs ask for.
	reboots *reboot.Scheduler

	id  identity
	seq int64
	// reportSeq is the number of the last inventory report sent.
	reportSeq int64
	// su is what the run knows of an update of its own binary.
	su selfUpdateState
}

// New checks cfg, creates the state directory and loads what an earlier run
// left there. It does not contact the controller.
func New(cfg Config) (*Agent, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("agent: no state directory")
	}
	if cfg.Backend == nil {
		return nil, errors.New("agent: no backend")
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = DefaultReportInterval
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = DefaultRetryWaitMin
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = DefaultRetryWaitMax
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, run: cfg.Runner}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.clock == nil {
		a.clock = systemClock{}
	}
	if a.run == nil {
		a.run = execRunner
	}
	api, err := newClient(cfg.Controller, cfg.Insecure, cfg.RootCAs, cfg.SourceAddr,
		retryPolicy{max: cfg.RetryMax, waitMin: cfg.RetryWaitMin, waitMax: cfg.RetryWaitMax}, slog.New(transportLog{a.log.Handler()}))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.api = api
	if err := ensureDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.openReboots(); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if _, err := readJSON(cfg.StateDir, identityFile, &a.id); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.id.Client != "" && cfg.Client != "" && a.id.Client != cfg.Client {
		return nil, fmt.Errorf("agent: state dir %s belongs to client %q, not %q; use another state dir to enroll elsewhere", cfg.StateDir, a.id.Client, cfg.Client)
	}
	var s seqState
	if _, err := readJSON(cfg.StateDir, seqFile, &s); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.seq = s.Seq
	var rs seqState
	if _, err := readJSON(cfg.StateDir, reportSeqFile, &rs); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.reportSeq = rs.Seq
	j, err := openJournal(filepath.Join(cfg.StateDir, journalDir))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.journal = j
	if a.id.enrolled() {
		a.api.endpoint, a.api.nodeKey = a.id.Endpoint, a.id.NodeKey
	}
	return a, nil
}

// Run enrolls if needed, delivers results left from an earlier run, then
// reports and polls for jobs until ctx is cancelled. It returns nil on
// cancellation and an error only for what retrying cannot fix (a refused
// enrollment, a state directory it cannot write).
//
// Run returns ErrRestart when the agent's binary was replaced (a
// self-update, or its rollback): the process must exit with code 3.
func (a *Agent) Run(ctx context.Context) error {
	ctx, err := a.beginSelfUpdate(ctx)
	if err != nil {
		return err
	}
	return a.endSelfUpdate(ctx, a.runLoop(ctx))
}

func (a *Agent) runLoop(ctx context.Context) error {
	defer func() {
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errConfirmTimeout) {
			// SIGTERM, or the service manager stopping the agent: the
			// expected end of a run, not a failure.
			a.log.Info("agent stopped: shutdown requested")
		}
	}()
	if err := a.enrollRetrying(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	a.log = a.log.With("endpoint", a.id.Endpoint, "client", a.id.Client)
	// After a stop in the middle of an install, the inventory goes out
	// before anything else: it is what tells the controller what the
	// interrupted job left installed, and the job's result names it.
	reported := false
	if len(a.interrupted()) > 0 {
		reported = a.report(ctx)
		var inventorySeq int64
		if reported {
			inventorySeq = a.reportSeq
		}
		if err := a.recoverInterrupted(inventorySeq); err != nil {
			return err
		}
	}
	// Results from before a restart go out next, before any poll, so the
	// controller never plans against a job it thinks is still running.
	for failures := 1; ; failures++ {
		err := a.flush(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		a.logFailure("cannot deliver pending results yet", err)
		if a.pause(ctx, failures) != nil {
			return nil
		}
	}
	if !reported {
		a.report(ctx)
	}
	nextReport := a.clock.Now().Add(a.reportEvery())
	failures := 0
	for ctx.Err() == nil {
		if !a.clock.Now().Before(nextReport) {
			a.report(ctx)
			nextReport = a.clock.Now().Add(a.reportEvery())
		}
		if err := a.flush(ctx); err != nil {
			failures++
			a.logFailure("cannot deliver pending results", err)
			_ = a.pause(ctx, failures)
			continue
		}
		a.tickReboots(ctx)
		started := a.clock.Now()
		jobs, err := a.api.poll(ctx, a.pollFor())
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			a.logFailure("job poll failed", err)
			_ = a.pause(ctx, failures)
			continue
		}
		failures = 0
		for _, sj := range jobs {
			if err := a.handle(ctx, sj); err != nil {
				// A journal the agent cannot write makes every later
				// job unsafe to run.
				return err
			}
		}
		if len(jobs) == 0 && a.clock.Now().Sub(started) < minPollGap {
			_ = a.clock.Sleep(ctx, minPollGap)
		}
	}
	return nil
}

// logFailure logs a failed call to the controller. A 401 means the
// controller does not know this endpoint or its key, which retrying does
// not fix: the log says what the technician does.
func (a *Agent) logFailure(msg string, err error) {
	if errorCode(err) == protocol.CodeUnauthorized {
		a.log.Error(msg+": the controller does not know this endpoint or its node key", "err", err,
			"fix", "if patchd's store was reset or restored from a backup older than this agent's enrollment, stop the agent, delete "+
				filepath.Join(a.cfg.StateDir, identityFile)+" and start it again to enrol")
		return
	}
	a.log.Warn(msg, "err", err)
}

// pause waits a jittered, growing delay after the failures-th failure in a
// row of the run loop.
func (a *Agent) pause(ctx context.Context, failures int) error {
	return a.clock.Sleep(ctx, fullJitter(a.cfg.RetryWaitMin, a.cfg.RetryWaitMax, failures))
}

// reportEvery is the report interval with ±10% jitter, so agents started
// together do not report together forever.
func (a *Agent) reportEvery() time.Duration {
	iv := a.cfg.ReportInterval
	return iv - iv/10 + time.Duration(mrand.Int64N(int64(iv/5)+1))
}

// enrollRetrying enrolls, retrying transient failures with backoff.
func (a *Agent) enrollRetrying(ctx context.Context) error {
	for failures := 1; ; failures++ {
		err := a.enroll(ctx)
		if err == nil {
			return nil
		}
		code := errorCode(err)
		if ctx.Err() != nil || (code != "" && !code.Retryable()) {
			return err
		}
		a.log.Warn("enrollment failed; retrying", "err", err)
		if err := a.pause(ctx, failures); err != nil {
			return err
		}
	}
}

// Enrolled says whether the state directory holds an identity the
// controller has given: without one the agent needs Client and
// EnrollSecret to start.
func (a *Agent) Enrolled() bool { return a.id.enrolled() }

// enroll gets the agent an endpoint identity, once. The instance id and node
// key are generated and stored before the request, so a retried or repeated
// enrollment is the same request and the controller answers it the same way.
func (a *Agent) enroll(ctx context.Context) error {
	if a.id.enrolled() {
		return nil
	}
	if a.cfg.Client == "" || a.cfg.EnrollSecret == "" {
		return errors.New("agent: not enrolled yet, and no client id and enrollment secret given")
	}
	if a.id.InstanceID == "" {
		inst, key := make([]byte, 16), make([]byte, 32)
		if _, err := rand.Read(inst); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		a.id = identity{
			Client:     a.cfg.Client,
			InstanceID: hex.EncodeToString(inst),
			NodeKey:    base64.RawURLEncoding.EncodeToString(key),
		}
		if err := writeJSON(a.cfg.StateDir, identityFile, a.id); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
	}
	resp, err := a.api.enroll(ctx, protocol.EnrollRequest{
		Client:     a.id.Client,
		Secret:     a.cfg.EnrollSecret,
		InstanceID: a.id.InstanceID,
		NodeKey:    a.id.NodeKey,
		Hostname:   a.cfg.Hostname,
		OS:         a.cfg.OS,
		Labels:     a.cfg.Labels,
	})
	if err != nil {
		return fmt.Errorf("enroll client %q: %w", a.id.Client, err)
	}
	if resp.Endpoint == "" || len(resp.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("enroll client %q: controller answered without an endpoint id or a valid signing key", a.id.Client)
	}
	id := a.id
	id.Endpoint, id.SigningKey = resp.Endpoint, resp.SigningKey
	if err := writeJSON(a.cfg.StateDir, identityFile, id); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	a.id = id
	a.api.endpoint, a.api.nodeKey = id.Endpoint, id.NodeKey
	a.log.Info("enrolled", "endpoint", id.Endpoint, "client", id.Client)
	return nil
}

// interruptedError is the error of every update of a job the agent was
// running when it stopped.
const interruptedError = "interrupted: the agent stopped while installing"

// recoverInterrupted turns jobs that were installing when the agent stopped
// into results in the outbox, every update's outcome unknown. inventorySeq
// is the number of the inventory report sent since the restart, or 0 when
// none went through. See the package comment for why the jobs are not run
// again.
func (a *Agent) recoverInterrupted(inventorySeq int64) error {
	for _, e := range a.interrupted() {
		now := a.clock.Now()
		r := protocol.ResultRequest{Job: e.Job, IdempotencyKey: e.Key, Updates: make([]protocol.UpdateResult, 0, len(e.Updates)),
			InventorySeq: inventorySeq, JobSeq: a.seq, Reboot: a.rebootState()}
		for _, u := range e.Updates {
			r.Updates = append(r.Updates, protocol.UpdateResult{Update: u.ID, Result: protocol.ResultUnknown, Error: interruptedError, At: now})
		}
		if err := a.journal.finish(e, r, now); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.log.Warn("job was interrupted by a stop; reporting its outcome as unknown, for the controller to judge by the inventory",
			"job", e.Job, "inventorySeq", inventorySeq)
	}
	return nil
}

// deliver posts result r. A controller older than the unknown outcome
// refuses it as invalid; the result then goes again the way older agents
// sent it, every unknown outcome as failed, so that it is recorded rather
// than dropped (the update then waits for the ring's next window, as it
// did before).
func (a *Agent) deliver(ctx context.Context, r protocol.ResultRequest) (protocol.ResultResponse, error) {
	resp, err := a.api.result(ctx, r)
	if (r.Reboot != nil || r.Hooks != nil) && refusedField(err, "reboot", "hooks") {
		// A controller older than reboot plans and scripts refuses the
		// fields it does not know; the outcomes still count.
		a.log.Warn("the controller refused the result's reboot state or script results (it is older than this agent); sending the result without them", "job", r.Job, "err", err)
		r.Reboot, r.Hooks = nil, nil
		resp, err = a.api.result(ctx, r)
	}
	if err == nil || errorCode(err) != protocol.CodeInvalid || !slices.ContainsFunc(r.Updates, isUnknown) {
		return resp, err
	}
	a.log.Warn("the controller refused an unknown outcome (it is older than this agent); sending the interrupted job's result as failed", "job", r.Job, "err", err)
	old := r
	old.InventorySeq = 0
	old.Updates = slices.Clone(r.Updates)
	for i := range old.Updates {
		if isUnknown(old.Updates[i]) {
			old.Updates[i].Result = protocol.ResultFailed
			old.Updates[i].Error = "the agent stopped while installing; the outcome is unknown until the next inventory report"
		}
	}
	return a.api.result(ctx, old)
}

func isUnknown(u protocol.UpdateResult) bool { return u.Result == protocol.ResultUnknown }

// flush sends every result in the outbox, oldest first, and stops at the
// first that cannot be delivered.
func (a *Agent) flush(ctx context.Context) error {
	for _, e := range a.journal.pending() {
		if err := a.send(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// send delivers one outbox entry and takes it out of the outbox on a 2xx
// (a duplicate included). A result the controller rejects for good (a 4xx
// other than an authentication problem) is dropped with an error in the
// log: keeping it would block every later result.
func (a *Agent) send(ctx context.Context, e *entry) error {
	resp, err := a.deliver(ctx, *e.Result)
	if err != nil {
		code := errorCode(err)
		if code == "" || code.Retryable() || code == protocol.CodeUnauthorized || code == protocol.CodeForbidden {
			return fmt.Errorf("job %s: deliver result: %w", e.Job, err)
		}
		a.log.Error("controller rejected a result; dropping it", "job", e.Job, "err", err)
	} else {
		a.log.Info("result delivered", "job", e.Job, "refused", e.Result.Refused, "duplicate", resp.Duplicate)
	}
	if err := a.journal.ack(e); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// report sends the inventory and reports whether the controller took it.
// Failures are logged: the next report replaces this one anyway.
func (a *Agent) report(ctx context.Context) bool {
	ups, err := Inventory(ctx, a.cfg.Backend)
	if err != nil {
		// Sending an empty inventory would tell the controller nothing is
		// installed; skip this report instead. A stop cuts the package
		// manager short: that is no failure of the endpoint.
		if ctx.Err() == nil {
			a.log.Error("inventory failed; report skipped", "err", err)
		}
		return false
	}
	pending, err := a.cfg.Backend.RebootPending(ctx)
	if err != nil {
		a.log.Warn("cannot tell whether a reboot is pending", "err", err)
	} else {
		a.observeReboot(pending)
	}
	// The number is stored before the report leaves, so that no later
	// report, even after a crash, reuses it: the controller keeps only
	// reports numbered at least as high as the one it has.
	seq := a.reportSeq + 1
	if err := writeJSON(a.cfg.StateDir, reportSeqFile, seqState{Seq: seq}); err != nil {
		a.log.Error("cannot number the inventory report; report skipped", "err", err)
		return false
	}
	a.reportSeq = seq
	rep := protocol.Report{
		Seq:           seq,
		JobSeq:        a.seq,
		Hostname:      a.cfg.Hostname,
		OS:            a.cfg.OS,
		Labels:        a.cfg.Labels,
		RebootPending: pending,
		Reboot:        a.rebootState(),
		Updates:       ups,
		AgentVersion:  buildinfo.Version(),
	}
	resp, err := a.api.report(ctx, rep)
	if rep.Reboot != nil && refusedField(err, "reboot", "agentVersion") {
		a.log.Warn("the controller refused the report's reboot state (it is older than this agent); reporting without it", "err", err)
		rep.Reboot, rep.AgentVersion = nil, ""
		resp, err = a.api.report(ctx, rep)
	}
	if err != nil {
		if ctx.Err() == nil {
			a.logFailure("inventory report failed", err)
		}
		return false
	}
	a.log.Info("inventory reported", "updates", resp.Updates, "rebootPending", pending)
	a.confirmSelfUpdate()
	return true
}

// handle verifies and runs one delivered job. It returns an error only when
// the journal cannot be written; everything else ends in a result (or a
// refusal) in the outbox.
func (a *Agent) handle(ctx context.Context, sj protocol.SignedJob) error {
	p, err := verifyJob(ed25519.PublicKey(a.id.SigningKey), a.id.Endpoint, sj)
	if err != nil {
		return a.refuse(ctx, p, err)
	}
	log := a.log.With("job", p.ID, "revision", p.Revision)
	if e := a.journal.byKey(p.IdempotencyKey); e != nil && e.Result != nil {
		log.Info("job already done; sending its recorded result again", "idempotencyKey", p.IdempotencyKey, "firstJob", e.Job)
		return a.resend(ctx, p, e)
	}
	if a.confirming(p) {
		log.Info("job re-delivered while its agent update awaits confirmation; its result follows the confirmation or the rollback")
		return nil
	}
	if err := checkFresh(p, a.seq, a.clock.Now()); err != nil {
		behind := p.Seq <= a.seq
		if !behind {
			// A signed, expired job for this endpoint still proves the
			// controller got this far; later jobs must be above it.
			if err := a.storeSeq(p.Seq); err != nil {
				return err
			}
		}
		if err := a.refuse(ctx, p, err); err != nil {
			return err
		}
		if behind {
			// The controller numbers this endpoint's jobs below what the
			// agent has seen (its store was restored from an older
			// backup): a report tells it the number to continue from.
			a.report(ctx)
		}
		return nil
	}
	if err := a.storeSeq(p.Seq); err != nil {
		return err
	}
	pol, err := readJobPolicy(p)
	if err != nil {
		return a.refuse(ctx, p, err)
	}
	e := &entry{Job: p.ID, Key: p.IdempotencyKey, Seq: p.Seq, Updates: p.Updates, StartedAt: a.clock.Now()}
	if err := a.journal.start(e); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("running job", "updates", len(p.Updates), "action", actionName(p.Action), "reboot", pol.reboot.Mode, "emergency", p.Emergency)
	results, hookResults, restart := a.runJob(ctx, log, p, pol)
	if restart {
		return ErrRestart
	}
	pending, err := a.cfg.Backend.RebootPending(ctx)
	if err != nil {
		log.Warn("cannot tell whether a reboot is pending", "err", err)
	} else {
		a.observeReboot(pending)
	}
	if err := a.reboots.Schedule(p.ID, pol.reboot, pending); err != nil {
		log.Error("cannot plan the job's reboot", "err", err)
	}
	r := protocol.ResultRequest{Job: p.ID, IdempotencyKey: p.IdempotencyKey, Updates: results, RebootPending: pending, JobSeq: a.seq,
		Hooks: hookResults, Reboot: a.rebootState()}
	if err := a.journal.finish(e, r, a.clock.Now()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := a.send(ctx, e); err != nil {
		log.Warn("result kept in the outbox", "err", err)
	}
	a.report(ctx)
	a.reboot(ctx, p, pol.reboot.Mode, pending)
	return nil
}

func (a *Agent) storeSeq(seq int64) error {
	if err := writeJSON(a.cfg.StateDir, seqFile, seqState{Seq: seq}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.seq = seq
	return nil
}

// refuse puts a refusal of the job in the outbox and tries to send it.
func (a *Agent) refuse(ctx context.Context, p protocol.JobPayload, err error) error {
	var rf *refusal
	if !errors.As(err, &rf) {
		return err
	}
	if p.ID == "" {
		a.log.Warn("dropping a job that cannot be addressed", "reason", rf.reason)
		return nil
	}
	a.log.Warn("job refused", "job", p.ID, "reason", rf.reason)
	// A reason may quote what the job held.
	reason := fitText(protocol.TextLines, rf.reason, protocol.MaxErrorBytes)
	r := protocol.ResultRequest{Job: p.ID, Refused: true, Reason: reason, Updates: []protocol.UpdateResult{}, JobSeq: a.seq, Reboot: a.rebootState()}
	if rf.trusted {
		now := a.clock.Now()
		r.IdempotencyKey = p.IdempotencyKey
		for _, u := range p.Updates {
			r.Updates = append(r.Updates, protocol.UpdateResult{Update: u.ID, Result: protocol.ResultRefused, Error: reason, At: now})
		}
	}
	e, jerr := a.journal.refuse(r, a.clock.Now())
	if jerr != nil {
		return fmt.Errorf("agent: %w", jerr)
	}
	if err := a.send(ctx, e); err != nil {
		a.log.Warn("refusal kept in the outbox", "job", p.ID, "err", err)
	}
	return nil
}

// resend answers a re-delivered job with the recorded result of the job that
// ran with the same idempotency key.
func (a *Agent) resend(ctx context.Context, p protocol.JobPayload, e *entry) error {
	r := *e.Result
	r.Job = p.ID
	if p.ID == e.Job && !e.Acked {
		if err := a.send(ctx, e); err != nil {
			a.log.Warn("result kept in the outbox", "job", p.ID, "err", err)
		}
		return nil
	}
	// Already acknowledged (or asked for under another job id): nothing to
	// keep durable, a failed send just makes the controller ask again.
	if _, err := a.deliver(ctx, r); err != nil {
		a.log.Warn("re-sending a recorded result failed", "job", p.ID, "err", err)
	}
	return nil
}

// install runs the job's updates through the backend, in the job's order,
// and gives every update of the job a result.
func (a *Agent) install(ctx context.Context, p protocol.JobPayload) []protocol.UpdateResult {
	ups := make([]*protocol.Update, len(p.Updates))
	for i, u := range p.Updates {
		ups[i] = &protocol.Update{ID: u.ID, Source: u.Source, Name: u.Name, Version: u.Version}
	}
	res, err := a.apply(ctx, p.Action, ups)
	byID := make(map[string]backend.Result, len(res))
	for _, r := range res {
		byID[r.Update] = r
	}
	now := a.clock.Now()
	out := make([]protocol.UpdateResult, 0, len(p.Updates))
	for _, u := range p.Updates {
		r, ok := byID[u.ID]
		ur := protocol.UpdateResult{Update: u.ID, At: now}
		switch {
		case ok && r.Succeeded:
			ur.Result, ur.Output = protocol.ResultSucceeded, tail(r.Output)
		case ok:
			ur.Result, ur.Error, ur.Output = protocol.ResultFailed, fitText(protocol.TextLines, r.Error, protocol.MaxErrorBytes), tail(r.Output)
			if ur.Error == "" {
				ur.Error = "install failed"
			}
		case err != nil:
			ur.Result, ur.Error = protocol.ResultFailed, fitText(protocol.TextLines, err.Error(), protocol.MaxErrorBytes)
		default:
			ur.Result, ur.Error = protocol.ResultFailed, "the backend returned no result for this update"
		}
		out = append(out, ur)
	}
	return out
}

// tail keeps the last maxOutput bytes of a tool's output, on a UTF-8
// boundary, with every character the controller refuses in text escaped
// (protocol.FitText).
func tail(s string) string {
	s = protocol.FitText(protocol.TextLines, s)
	if len(s) <= maxOutput {
		return s
	}
	s = s[len(s)-maxOutput:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return "…" + s
}

// fitText makes s, text of kind the agent sends, acceptable to the
// controller whatever a tool printed: every character the controller
// refuses escaped (protocol.FitText), and at most max bytes, cut on a
// UTF-8 boundary.
func fitText(kind protocol.TextKind, s string, max int) string {
	s = protocol.FitText(kind, s)
	if len(s) <= max {
		return s
	}
	const more = "…"
	s = s[:max-len(more)]
	// Fitted text is valid UTF-8 but where the cut split a character.
	for len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s + more
}

// reboot applies the job's reboot policy after its result is out:
// if-required reboots now when a reboot is pending and the window is
// still open; force, always and prompt were planned before the result
// (agent/reboot), and their first steps may be due now.
func (a *Agent) reboot(ctx context.Context, p protocol.JobPayload, mode string, pending bool) {
	log := a.log.With("job", p.ID)
	switch mode {
	case protocol.RebootNever:
		if pending {
			log.Info("a reboot is pending; the job's policy is never to reboot")
		}
	case protocol.RebootIfRequired:
		if !pending {
			return
		}
		if !a.clock.Now().Before(p.NotAfter) {
			log.Warn("a reboot is pending but the maintenance window has closed; not rebooting", "notAfter", p.NotAfter)
			return
		}
		if err := a.rebootNow(ctx, "updates need a reboot"); err != nil {
			log.Error("reboot failed", "err", err)
		}
	default:
		a.tickReboots(ctx)
	}
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// execRunner runs argv with os/exec and includes the command's output in
// the error when it fails.
func execRunner(ctx context.Context, argv []string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", argv[0], err, strings.TrimSpace(tail(string(out))))
	}
	return nil
}

// transportLog is the handler of the HTTP client's log. The retrying
// library logs every failed attempt at ERROR, but an attempt refused
// while the controller restarts is expected and retried (the agent logs a
// call that runs out of retries at WARN), and one cut short by the
// agent's own stop is no failure at all. So a failed attempt is INFO, and
// one ended by the cancelled context DEBUG.
type transportLog struct{ h slog.Handler }

func (t transportLog) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelError {
		return t.h.Enabled(ctx, slog.LevelDebug) || t.h.Enabled(ctx, slog.LevelInfo)
	}
	return t.h.Enabled(ctx, l)
}

func (t transportLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		return t.h.Handle(ctx, r)
	}
	r.Level = slog.LevelInfo
	r.Attrs(func(a slog.Attr) bool {
		err, ok := a.Value.Any().(error)
		// Only a cancelled context: an attempt that timed out (a
		// controller that hangs) stays INFO.
		if ok && errors.Is(err, context.Canceled) {
			r.Level = slog.LevelDebug
			return false
		}
		return true
	})
	if !t.h.Enabled(ctx, r.Level) {
		return nil
	}
	return t.h.Handle(ctx, r)
}

func (t transportLog) WithAttrs(as []slog.Attr) slog.Handler {
	return transportLog{t.h.WithAttrs(as)}
}

func (t transportLog) WithGroup(name string) slog.Handler { return transportLog{t.h.WithGroup(name)} }
