package agent

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/agent/reboot"
	"github.com/patchline/patchline/protocol"
)

// simulatedReboot is a backend that stands for a machine and can
// "reboot" it (the sim backend).
type simulatedReboot interface {
	Reboot(ctx context.Context) error
}

// openReboots opens the reboot scheduler over the state directory. Its
// notifier is Config.Notifier, else the backend when it records prompts
// itself (the sim backend), else the OS's own.
func (a *Agent) openReboots() error {
	n := a.cfg.Notifier
	if n == nil {
		if bn, ok := a.cfg.Backend.(notify.Notifier); ok {
			n = bn
		} else {
			n = notify.ForOS(runtime.GOOS, run.Exec{})
		}
	}
	s, err := reboot.Open(reboot.Config{Dir: a.cfg.StateDir, Notifier: n, Reboot: a.rebootNow, Now: a.clock.Now, Logger: a.log})
	if err != nil {
		return err
	}
	a.reboots = s
	return nil
}

// rebootState is the reboot state for a report or a result.
func (a *Agent) rebootState() *protocol.RebootState {
	s := a.reboots.State()
	return &s
}

// observeReboot records whether a reboot is pending.
func (a *Agent) observeReboot(pending bool) {
	if err := a.reboots.Observe(pending); err != nil {
		a.log.Error("cannot record the reboot state", "err", err)
	}
}

// tickReboots does what the reboot plan has due: warnings, prompts, the
// reboot. A few steps can be due at once (after the agent was down).
func (a *Agent) tickReboots(ctx context.Context) {
	for range 10 {
		next := a.reboots.Next()
		if next.IsZero() || next.After(a.clock.Now()) || ctx.Err() != nil {
			return
		}
		if err := a.reboots.Tick(ctx); err != nil {
			a.log.Error("reboot plan", "err", err)
			return
		}
	}
}

// pollFor is how long the next job poll may wait: pollWait, or less when
// the reboot plan has something due sooner.
func (a *Agent) pollFor() time.Duration {
	next := a.reboots.Next()
	if next.IsZero() {
		return pollWait
	}
	return min(pollWait, max(time.Second, next.Sub(a.clock.Now())))
}

// rebootNow reboots the endpoint: with the reboot command, or on a
// simulated endpoint its simulated reboot. Without either it only logs.
func (a *Agent) rebootNow(ctx context.Context, why string) error {
	log := a.log
	if len(a.cfg.RebootCommand) == 0 {
		if sr, ok := a.cfg.Backend.(simulatedReboot); ok {
			log.Info("rebooting the simulated endpoint", "why", why)
			return sr.Reboot(ctx)
		}
		log.Warn("reboot needed but no reboot command is configured", "why", why)
		return nil
	}
	log.Info("rebooting", "why", why, "command", strings.Join(a.cfg.RebootCommand, " "))
	if err := a.run(ctx, a.cfg.RebootCommand); err != nil {
		return errors.Join(errors.New("reboot command failed"), err)
	}
	return nil
}

// refusedField reports whether err is the controller refusing a request
// for one of these JSON fields, which a controller older than them does
// not know (its strict decoder says `unknown field "reboot"`).
func refusedField(err error, fields ...string) bool {
	if err == nil || errorCode(err) != protocol.CodeInvalid {
		return false
	}
	for _, f := range fields {
		if strings.Contains(err.Error(), `unknown field "`+f+`"`) {
			return true
		}
	}
	return false
}
