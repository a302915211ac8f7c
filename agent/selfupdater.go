package agent

// The agent's side of self-update (agent/selfupdate does the binary): a
// job's agent update (source protocol.SourcePatchline) goes to the
// updater instead of the backend, and the job's result waits for the new
// binary's first accepted report (succeeded) or for the rollback (failed,
// with the reason).

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/protocol"
)

// ErrRestart is what Run returns when the agent's binary was replaced (an
// update, or a rollback of one): patch-agent exits with code 3 and its
// service manager starts the binary now in place.
var ErrRestart = errors.New("the agent's binary was replaced; restart it")

// errConfirmTimeout ends a run whose new binary did not check in in time.
var errConfirmTimeout = errors.New("the new agent did not check in in time")

// selfUpdateJob is what the pending update keeps of its job, to finish
// the job's journal entry after the restart.
type selfUpdateJob struct {
	Key    string `json:"idempotencyKey"`
	Update string `json:"update"`
	// Results are the outcomes of the job's other updates, installed
	// before the agent's own.
	Results       []protocol.UpdateResult `json:"results,omitempty"`
	RebootPending bool                    `json:"rebootPending,omitempty"`
}

// selfUpdateState is the run's view of a pending update of this binary.
type selfUpdateState struct {
	// job is the pending update's job while this new binary waits to
	// confirm it; nil otherwise.
	job *selfUpdateJob
	// stop ends the confirmation timer.
	stop func()
}

// beginSelfUpdate settles what an earlier run's update left: a rollback
// to finish (ErrRestart), a failed update to report, or a new binary that
// must check in before its deadline, which the returned context enforces.
func (a *Agent) beginSelfUpdate(ctx context.Context) (context.Context, error) {
	su := a.cfg.SelfUpdate
	if su == nil {
		return ctx, nil
	}
	out, p, err := su.Begin()
	if err != nil {
		return ctx, err
	}
	var job selfUpdateJob
	if p != nil && len(p.Job) > 0 {
		if err := json.Unmarshal(p.Job, &job); err != nil {
			return ctx, err
		}
	}
	switch out {
	case selfupdate.Restart:
		a.log.Error("the new agent did not check in; the previous binary is back in place, restarting", "version", p.Version)
		return ctx, ErrRestart
	case selfupdate.Failed:
		a.log.Error("agent update failed", "version", p.Version, "reason", p.RolledBack)
		if err := a.finishSelfUpdate(&job, protocol.ResultFailed, p.RolledBack); err != nil {
			return ctx, err
		}
		return ctx, su.Resolve()
	case selfupdate.Waiting:
		a.log.Info("running a new agent version; it is confirmed by its first accepted report", "version", p.Version, "from", p.From,
			"deadline", su.Deadline(p))
		ctx, cancel := context.WithCancelCause(ctx)
		t := time.AfterFunc(su.Deadline(p).Sub(a.clock.Now()), func() { cancel(errConfirmTimeout) })
		a.su = selfUpdateState{job: &job, stop: func() { t.Stop() }}
		return ctx, nil
	}
	return ctx, nil
}

// endSelfUpdate turns the end of a run whose new binary ran out of time
// into a rollback.
func (a *Agent) endSelfUpdate(ctx context.Context, err error) error {
	if a.su.stop != nil {
		a.su.stop()
	}
	if !errors.Is(context.Cause(ctx), errConfirmTimeout) || a.su.job == nil {
		return err
	}
	if rerr := a.cfg.SelfUpdate.Rollback(); rerr != nil {
		return errors.Join(err, rerr)
	}
	a.log.Error("the new agent did not check in in time; the previous binary is back in place, restarting")
	return ErrRestart
}

// confirmSelfUpdate confirms the running binary's update after a report
// the controller accepted: the job's result goes into the outbox.
func (a *Agent) confirmSelfUpdate() {
	if a.su.job == nil {
		return
	}
	if err := a.finishSelfUpdate(a.su.job, protocol.ResultSucceeded, ""); err != nil {
		a.log.Error("cannot record the agent update's result", "err", err)
		return
	}
	if err := a.cfg.SelfUpdate.Confirm(); err != nil {
		a.log.Error("cannot confirm the agent update", "err", err)
		return
	}
	a.su.stop()
	a.su.job = nil
	a.log.Info("agent update confirmed")
}

// finishSelfUpdate writes the result of the update's job into its journal
// entry, the outbox: the other updates' outcomes and the agent update's.
func (a *Agent) finishSelfUpdate(job *selfUpdateJob, result protocol.Result, reason string) error {
	e := a.journal.byKey(job.Key)
	if job.Key == "" || e == nil || e.Result != nil {
		return nil
	}
	now := a.clock.Now()
	r := protocol.ResultRequest{Job: e.Job, IdempotencyKey: e.Key, RebootPending: job.RebootPending, JobSeq: a.seq,
		Updates: append(job.Results, protocol.UpdateResult{Update: job.Update, Result: result,
			Error: fitText(protocol.TextLines, reason, protocol.MaxErrorBytes), At: now})}
	return a.journal.finish(e, r, now)
}

// interrupted is the journal's interrupted jobs but the one whose agent
// update this binary is confirming: that one ends with the confirmation
// or the rollback.
func (a *Agent) interrupted() []*entry {
	es := a.journal.interrupted()
	if a.su.job == nil {
		return es
	}
	out := es[:0:0]
	for _, e := range es {
		if e.Key != a.su.job.Key {
			out = append(out, e)
		}
	}
	return out
}

// installJob installs p's updates: the backend's first, then the agent's
// own. restart is set when the agent's binary was swapped: the job's
// result then waits in the pending update.
func (a *Agent) installJob(ctx context.Context, p protocol.JobPayload) (results []protocol.UpdateResult, restart bool) {
	var own *protocol.JobUpdate
	others := p
	others.Updates = nil
	for i, u := range p.Updates {
		if u.Source == protocol.SourcePatchline && own == nil {
			own = &p.Updates[i]
			continue
		}
		others.Updates = append(others.Updates, u)
	}
	if len(others.Updates) > 0 || own == nil {
		results = a.install(ctx, others)
	}
	if own == nil {
		return results, false
	}
	fail := func(msg string) ([]protocol.UpdateResult, bool) {
		a.log.Error("agent update refused or failed; this agent keeps running", "job", p.ID, "version", own.Version, "err", msg)
		return append(results, protocol.UpdateResult{Update: own.ID, Result: protocol.ResultFailed,
			Error: fitText(protocol.TextLines, msg, protocol.MaxErrorBytes), At: a.clock.Now()}), false
	}
	if a.cfg.SelfUpdate == nil {
		return fail("this agent pins no release key (--release-key), so it cannot update itself")
	}
	pending, _ := a.cfg.Backend.RebootPending(ctx)
	job, err := json.Marshal(selfUpdateJob{Key: p.IdempotencyKey, Update: own.ID, Results: results, RebootPending: pending})
	if err != nil {
		return fail(err.Error())
	}
	if err := a.cfg.SelfUpdate.Install(ctx, own.Version, a.api.download, job); err != nil {
		return fail(err.Error())
	}
	a.log.Info("agent updated; restarting to run it", "job", p.ID, "version", own.Version)
	return nil, true
}

// confirming says whether p is the job of the update this binary is
// confirming: a re-delivery of it (its lease ran out meanwhile) is left
// unanswered, since the confirmation or the rollback gives its result.
func (a *Agent) confirming(p protocol.JobPayload) bool {
	return a.su.job != nil && p.IdempotencyKey != "" && p.IdempotencyKey == a.su.job.Key
}
