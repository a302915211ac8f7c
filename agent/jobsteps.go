package agent

// What a job asks besides its installs (protocol/jobpolicy.go): the
// guard processes it waits for, the reviewed scripts it runs before and
// after, and whether it rolls updates back. readJobPolicy checks all of it
// before anything runs; runJob carries it out around the backend.

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/guard"
	"github.com/patchline/patchline/agent/hooks"
	"github.com/patchline/patchline/protocol"
)

// defaultHookTimeout bounds a script when the job names no timeout.
const defaultHookTimeout = 10 * time.Minute

// guardPoll is how often a job waiting for its guard processes looks
// again.
const guardPoll = 30 * time.Second

// jobPolicy is a job's policy, read and checked.
type jobPolicy struct {
	reboot      protocol.RebootPolicy
	hookTimeout time.Duration
	guardWait   time.Duration
}

// rebootPolicy is the job's reboot policy: RebootPolicy, or for a job
// from a controller that predates it, Reboot and RebootDeadline.
func rebootPolicy(p protocol.JobPayload) protocol.RebootPolicy {
	if p.RebootPolicy != nil {
		return *p.RebootPolicy
	}
	rp := protocol.RebootPolicy{Mode: p.Reboot, Deadline: p.RebootDeadline}
	if rp.Mode == "" {
		rp.Mode = protocol.RebootNever
	}
	return rp
}

// readJobPolicy checks what a verified job asks besides its updates, and
// returns a trusted *refusal when the agent cannot do it as signed: above
// all a script whose content does not hash to its signed SHA-256.
func readJobPolicy(p protocol.JobPayload) (jobPolicy, error) {
	refuse := func(format string, args ...any) (jobPolicy, error) {
		return jobPolicy{}, &refusal{reason: fmt.Sprintf(format, args...), trusted: true}
	}
	pol := jobPolicy{reboot: rebootPolicy(p), hookTimeout: defaultHookTimeout}
	if _, err := protocol.ParseRebootSchedule(pol.reboot); err != nil {
		return refuse("%v", err)
	}
	if p.Action != protocol.ActionInstall && p.Action != protocol.ActionRollback {
		return refuse("unknown action %q (want install or %s)", p.Action, protocol.ActionRollback)
	}
	if h := p.Hooks; h != nil {
		if h.Timeout != "" {
			d, err := time.ParseDuration(h.Timeout)
			if err != nil || d <= 0 {
				return refuse("hooks timeout %q: not a positive duration", h.Timeout)
			}
			pol.hookTimeout = d
		}
		for _, s := range []struct {
			hook   string
			script *protocol.Script
		}{{"pre", h.Pre}, {"post", h.Post}} {
			if s.script == nil {
				continue
			}
			if err := hooks.Verify(s.script, runtime.GOOS); err != nil {
				return refuse("%s %v", s.hook, err)
			}
		}
	}
	if g := p.Guards; g != nil && g.Wait != "" {
		d, err := time.ParseDuration(g.Wait)
		if err != nil || d < 0 {
			return refuse("guards wait %q: not a duration", g.Wait)
		}
		pol.guardWait = d
	}
	return pol, nil
}

// runJob carries out a checked job: it waits for the guard processes,
// runs the pre script, the installs (or the rollback), then the post
// script, and gives every update a result.
//
// restart is set when the job updated the agent itself: the new binary
// sends the job's result once it has checked in (agent/selfupdater.go).
func (a *Agent) runJob(ctx context.Context, log *slog.Logger, p protocol.JobPayload, pol jobPolicy) (results []protocol.UpdateResult, hookResults []protocol.HookResult, restart bool) {
	if g := p.Guards; g != nil && len(g.Processes) > 0 {
		if running := a.waitForGuards(ctx, log, p, pol.guardWait); running != "" {
			why := fmt.Sprintf("process %s is running (waited %s for it to end)", running, pol.guardWait)
			if ctx.Err() != nil {
				why = fmt.Sprintf("process %s was running when the agent stopped", running)
			}
			log.Info("job deferred by a guard process", "process", running)
			return a.every(p, protocol.ResultDeferredByGuard, why), nil, false
		}
	}
	env := []string{"PATCHLINE_JOB=" + p.ID, "PATCHLINE_ACTION=" + actionName(p.Action)}
	if p.Hooks != nil && p.Hooks.Pre != nil {
		hr := a.runHook(ctx, "pre", p.Hooks.Pre, pol.hookTimeout, env)
		hookResults = append(hookResults, hr)
		if hr.Error != "" {
			log.Warn("pre script failed; installs skipped", "script", hr.Path, "err", hr.Error)
			return a.every(p, protocol.ResultHookFailed, "pre "+hr.Error), hookResults, false
		}
	}
	results, restart = a.installJob(ctx, p)
	if restart {
		return nil, hookResults, true
	}
	if p.Hooks != nil && p.Hooks.Post != nil {
		hr := a.runHook(ctx, "post", p.Hooks.Post, pol.hookTimeout, env)
		hookResults = append(hookResults, hr)
		if hr.Error != "" {
			log.Warn("post script failed", "script", hr.Path, "err", hr.Error)
		}
	}
	return results, hookResults, false
}

func actionName(action string) string {
	if action == protocol.ActionRollback {
		return action
	}
	return "install"
}

// runHook runs one script and fits its result to the controller's text
// rules.
func (a *Agent) runHook(ctx context.Context, hook string, s *protocol.Script, timeout time.Duration, env []string) protocol.HookResult {
	hr := hooks.Run(ctx, hook, s, timeout, a.cfg.StateDir, append(env, "PATCHLINE_HOOK="+hook))
	hr.Error = fitText(protocol.TextLines, hr.Error, protocol.MaxErrorBytes)
	hr.Output = tail(hr.Output)
	return hr
}

// every gives every update of p the same result.
func (a *Agent) every(p protocol.JobPayload, result protocol.Result, why string) []protocol.UpdateResult {
	now := a.clock.Now()
	why = fitText(protocol.TextLines, why, protocol.MaxErrorBytes)
	out := make([]protocol.UpdateResult, 0, len(p.Updates))
	for _, u := range p.Updates {
		out = append(out, protocol.UpdateResult{Update: u.ID, Result: result, Error: why, At: now})
	}
	return out
}

// waitForGuards returns "" once none of the job's guard processes runs,
// or the first one still running when wait has passed (or the job's
// window ends first).
func (a *Agent) waitForGuards(ctx context.Context, log *slog.Logger, p protocol.JobPayload, wait time.Duration) string {
	until := a.clock.Now().Add(wait)
	if p.NotAfter.Before(until) {
		until = p.NotAfter
	}
	for {
		running, err := guard.Running(ctx, p.Guards.Processes)
		if err != nil {
			// Not knowing is not permission: the job waits as if a
			// guard process ran.
			log.Warn("cannot list processes for the job's guards", "err", err)
			running = []string{strings.Join(p.Guards.Processes, ", ") + " (the process list could not be read)"}
		}
		if len(running) == 0 {
			return ""
		}
		left := until.Sub(a.clock.Now())
		if left <= 0 || ctx.Err() != nil {
			return running[0]
		}
		log.Info("waiting for guard processes to end", "running", running, "until", until)
		if err := a.clock.Sleep(ctx, min(left, guardPoll)); err != nil {
			return running[0]
		}
	}
}

// apply hands the updates to the backend: to install them, or to roll
// them back when the job says so and the backend can.
func (a *Agent) apply(ctx context.Context, action string, ups []*protocol.Update) ([]backend.Result, error) {
	if action != protocol.ActionRollback {
		return a.cfg.Backend.Install(ctx, ups)
	}
	if rb, ok := a.cfg.Backend.(backend.Rollbacker); ok {
		return rb.Rollback(ctx, ups)
	}
	res := make([]backend.Result, 0, len(ups))
	for _, u := range ups {
		res = append(res, backend.Result{Update: u.ID, Error: backend.NotSupported(u.Source)})
	}
	return res, nil
}
