// Package reboot carries out a job's reboot policy after the job: it plans
// the reboot, warns and asks the people logged in (through package
// notify), records their deferrals, and reboots at the planned moment.
//
// The times come from protocol.RebootSchedule, the functions the planner
// uses to show them, so what `patchctl why` says is what the agent does:
//
//   - force: reboot at the deadline (the job's end plus the policy's
//     deadline), with a notice at each warning offset before it, and only
//     when a reboot is pending;
//   - always: as force, whether or not a reboot is pending;
//   - prompt: ask at the job's end (out of quiet hours); "postpone", and a
//     prompt nobody answered, use one deferral and ask again DeferFor
//     later; "restart now" reboots; once the deferrals are used the
//     endpoint reboots DeferFor after the last one; with nobody logged in
//     it reboots at once; and it reboots at the deadline whatever anyone
//     does. Only when a reboot is pending.
//   - never and if-required plan nothing here (the agent handles
//     if-required right after the job).
//
// The plan and every deferral are kept in the state directory
// (reboot.json, replaced atomically), so an agent restart resumes the same
// plan. A reboot that is no longer pending (someone restarted the
// computer) ends a force or prompt plan.
//
// A Scheduler is owned by the agent's run loop, which calls Tick when Next
// is due; it has no lock.
package reboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

// StateFile is the scheduler's file in the agent's state directory.
const StateFile = "reboot.json"

// DefaultPromptTimeout is how long a prompt waits for an answer.
const DefaultPromptTimeout = 5 * time.Minute

// retryAfter is how long after a failed reboot command it is tried again.
const retryAfter = 5 * time.Minute

// Config is what a Scheduler needs.
type Config struct {
	// Dir is the agent's state directory.
	Dir      string
	Notifier notify.Notifier
	// Reboot reboots the endpoint now.
	Reboot func(ctx context.Context, why string) error
	// Now is the clock.
	Now    func() time.Time
	Logger *slog.Logger
	// PromptTimeout bounds each prompt; zero is DefaultPromptTimeout.
	PromptTimeout time.Duration
}

// Deferral is one postponement of a planned reboot.
type Deferral struct {
	At time.Time `json:"at"`
	// Answer is notify.Postpone, or notify.NoAnswer for a prompt nobody
	// answered.
	Answer notify.Answer `json:"answer"`
}

// plan is a reboot the agent will carry out.
type plan struct {
	Job    string                `json:"job"`
	Policy protocol.RebootPolicy `json:"policy"`
	JobEnd time.Time             `json:"jobEnd"`
	// Deferrals are the users' postponements, oldest first.
	Deferrals []Deferral `json:"deferrals,omitempty"`
	// Warned is the reboot time the last warning was given for and that
	// warning's due time, so a restart does not warn twice.
	WarnedFor time.Time `json:"warnedFor,omitzero"`
	WarnedAt  time.Time `json:"warnedAt,omitzero"`
	// RetryAt is set after a reboot command failed.
	RetryAt time.Time `json:"retryAt,omitzero"`
}

type state struct {
	// PendingSince is when the agent first saw a reboot pending.
	PendingSince time.Time `json:"pendingSince,omitzero"`
	Plan         *plan     `json:"plan,omitempty"`
}

// Scheduler plans and carries out reboots.
type Scheduler struct {
	cfg Config
	log *slog.Logger
	st  state
}

// Open reads the scheduler's state from cfg.Dir.
func Open(cfg Config) (*Scheduler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PromptTimeout <= 0 {
		cfg.PromptTimeout = DefaultPromptTimeout
	}
	s := &Scheduler{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, StateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reboot state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("reboot state %s: %w", filepath.Join(cfg.Dir, StateFile), err)
		}
		if s.st.Plan != nil {
			if _, err := protocol.ParseRebootSchedule(s.st.Plan.Policy); err != nil {
				s.log.Error("dropping a stored reboot plan with a bad policy", "job", s.st.Plan.Job, "err", err)
				s.st.Plan = nil
			}
		}
	}
	return s, nil
}

func (s *Scheduler) save() error {
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("reboot state: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.cfg.Dir, StateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("reboot state: %w", err)
	}
	return nil
}

// Observe records whether a reboot is pending now. A force or prompt
// plan ends when the reboot is no longer pending.
func (s *Scheduler) Observe(pending bool) error {
	now := s.cfg.Now()
	changed := false
	switch {
	case pending && s.st.PendingSince.IsZero():
		s.st.PendingSince, changed = now.UTC(), true
	case !pending && !s.st.PendingSince.IsZero():
		s.st.PendingSince, changed = time.Time{}, true
	}
	if p := s.st.Plan; p != nil && !pending && p.Policy.Mode != protocol.RebootAlways {
		s.log.Info("planned reboot dropped: no reboot is pending any more", "job", p.Job)
		s.st.Plan, changed = nil, true
	}
	if !changed {
		return nil
	}
	return s.save()
}

// Schedule plans the reboot job asks for under policy, the job having
// just ended with a reboot pending or not. never and if-required plan
// nothing. A plan already made whose reboot comes no later is kept: a
// second job never pushes a reboot further away.
func (s *Scheduler) Schedule(job string, policy protocol.RebootPolicy, pending bool) error {
	sched, err := protocol.ParseRebootSchedule(policy)
	if err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	switch policy.Mode {
	case protocol.RebootNever, protocol.RebootIfRequired:
		return nil
	case protocol.RebootForce, protocol.RebootPrompt:
		if !pending {
			s.log.Info("no reboot pending after the job; none planned", "job", job, "reboot", policy.Mode)
			return nil
		}
	}
	now := s.cfg.Now()
	np := &plan{Job: job, Policy: policy, JobEnd: now.UTC()}
	if old := s.st.Plan; old != nil {
		if at, _ := s.rebootAt(old); !at.After(sched.RebootDeadline(now)) {
			s.log.Info("a reboot is already planned no later; keeping it", "job", job, "plannedBy", old.Job, "at", at)
			return nil
		}
	}
	s.st.Plan = np
	if err := s.save(); err != nil {
		return err
	}
	at, _ := s.rebootAt(np)
	s.log.Info("reboot planned", "job", job, "reboot", policy.Mode, "at", at, "deadline", sched.RebootDeadline(now))
	return nil
}

// rebootAt is when plan p reboots unless someone restarts earlier: the
// deadline, or for a prompt whose deferrals are used up the moment after
// the last one. It also returns the prompt due before then, if any.
func (s *Scheduler) rebootAt(p *plan) (at time.Time, prompt *time.Time) {
	sched, _ := protocol.ParseRebootSchedule(p.Policy)
	deadline := sched.RebootDeadline(p.JobEnd)
	if !p.RetryAt.IsZero() {
		return p.RetryAt, nil
	}
	if p.Policy.Mode != protocol.RebootPrompt {
		return deadline, nil
	}
	var last time.Time
	if n := len(p.Deferrals); n > 0 {
		last = p.Deferrals[n-1].At
	}
	step := sched.NextPromptStep(p.JobEnd, len(p.Deferrals), last)
	if step.Prompt {
		return deadline, &step.At
	}
	return step.At, nil
}

// warnings returns the latest warning due by now for a reboot at at that
// was not given yet, and the next one after now.
func (s *Scheduler) warnings(p *plan, at, now time.Time) (due, next time.Time) {
	sched, _ := protocol.ParseRebootSchedule(p.Policy)
	times := sched.WarningTimes(at, p.JobEnd)
	if p.Policy.Mode != protocol.RebootPrompt && at.After(p.JobEnd) {
		// force and always tell the users at once when the restart comes;
		// a prompt does that itself.
		times = append([]time.Time{p.JobEnd}, times...)
	}
	for _, w := range times {
		if p.WarnedFor.Equal(at) && !w.After(p.WarnedAt) {
			continue
		}
		if !w.After(now) {
			due = w
		} else if next.IsZero() {
			next = w
		}
	}
	return due, next
}

// Next is when Tick has something to do, zero when nothing is planned.
func (s *Scheduler) Next() time.Time {
	p := s.st.Plan
	if p == nil {
		return time.Time{}
	}
	at, prompt := s.rebootAt(p)
	next := at
	if prompt != nil && prompt.Before(next) {
		next = *prompt
	}
	now := s.cfg.Now()
	if due, w := s.warnings(p, at, now); !due.IsZero() {
		return now
	} else if !w.IsZero() && w.Before(next) {
		next = w
	}
	return next
}

// Tick does what is due: a warning, a prompt, the reboot. A prompt waits
// for its answer (up to the prompt timeout).
func (s *Scheduler) Tick(ctx context.Context) error {
	p := s.st.Plan
	if p == nil {
		return nil
	}
	now := s.cfg.Now()
	at, prompt := s.rebootAt(p)
	if !now.Before(at) {
		return s.reboot(ctx, p, "the planned reboot is due")
	}
	if due, _ := s.warnings(p, at, now); !due.IsZero() {
		p.WarnedFor, p.WarnedAt = at, due
		if err := s.save(); err != nil {
			return err
		}
		msg := fmt.Sprintf("This computer will restart at %s (in %s) to finish installing updates. Save your work.",
			s.clock(p, at), shortDuration(at.Sub(now)))
		if err := s.cfg.Notifier.Notify(ctx, "Restart soon", msg); err != nil {
			s.log.Warn("cannot warn the users of the reboot", "err", err)
		}
	}
	if prompt != nil && !now.Before(*prompt) {
		return s.ask(ctx, p, at)
	}
	return nil
}

// ask prompts the users and acts on the answer.
func (s *Scheduler) ask(ctx context.Context, p *plan, rebootAt time.Time) error {
	sched, _ := protocol.ParseRebootSchedule(p.Policy)
	left := sched.Deferrals - len(p.Deferrals)
	times := "times"
	if left == 1 {
		times = "time"
	}
	pr := notify.Prompt{
		Title: "Restart needed",
		Message: fmt.Sprintf("Updates installed on this computer need a restart. It will restart at %s at the latest. "+
			"You can postpone the restart by %s, %d more %s.", s.clock(p, rebootAt), shortDuration(sched.DeferFor), left, times),
		PostponeLabel: "Postpone " + shortDuration(sched.DeferFor),
		NowLabel:      "Restart now",
		Timeout:       s.cfg.PromptTimeout,
	}
	answer, err := s.cfg.Notifier.Ask(ctx, pr)
	if ctx.Err() != nil {
		return nil // asked again after the agent's restart
	}
	if err != nil {
		s.log.Warn("the reboot prompt failed; counted as unanswered", "err", err)
	}
	switch answer {
	case notify.RestartNow:
		return s.reboot(ctx, p, "a user chose to restart now")
	case notify.NoUsers:
		return s.reboot(ctx, p, "nobody is logged in to ask")
	}
	if answer != notify.Postpone {
		answer = notify.NoAnswer
	}
	p.Deferrals = append(p.Deferrals, Deferral{At: s.cfg.Now().UTC(), Answer: answer})
	if err := s.save(); err != nil {
		return err
	}
	at, _ := s.rebootAt(p)
	s.log.Info("reboot postponed", "job", p.Job, "answer", answer, "deferralsUsed", len(p.Deferrals), "deferrals", sched.Deferrals, "rebootAt", at)
	return nil
}

// reboot forgets the plan, durably, then reboots. A failed reboot command
// puts the plan back, to be tried again later.
func (s *Scheduler) reboot(ctx context.Context, p *plan, why string) error {
	s.st.Plan = nil
	if err := s.save(); err != nil {
		return err
	}
	s.log.Info("rebooting", "job", p.Job, "reboot", p.Policy.Mode, "why", why)
	if err := s.cfg.Reboot(ctx, why); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		p.RetryAt = s.cfg.Now().Add(retryAfter).UTC()
		s.st.Plan = p
		s.log.Error("reboot failed; trying again later", "err", err, "retryAt", p.RetryAt)
		return s.save()
	}
	return nil
}

// State is the reboot state for reports and results.
func (s *Scheduler) State() protocol.RebootState {
	rs := protocol.RebootState{PendingSince: s.st.PendingSince}
	if p := s.st.Plan; p != nil {
		rs.Mode = p.Policy.Mode
		rs.DeferralsUsed = len(p.Deferrals)
		at, _ := s.rebootAt(p)
		rs.ScheduledAt = at.UTC()
	}
	return rs
}

// Deferrals are the recorded deferrals of the planned reboot.
func (s *Scheduler) Deferrals() []Deferral {
	if s.st.Plan == nil {
		return nil
	}
	return append([]Deferral(nil), s.st.Plan.Deferrals...)
}

// clock formats t for people: local time in the policy's time zone.
func (s *Scheduler) clock(p *plan, t time.Time) string {
	loc := time.Local
	if p.Policy.Timezone != "" {
		if l, err := time.LoadLocation(p.Policy.Timezone); err == nil {
			loc = l
		}
	}
	return t.In(loc).Format("Mon 2 Jan 15:04 MST")
}

// shortDuration writes d without zero units: "4h", "1h30m", "15m".
func shortDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "less than a minute"
	}
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
