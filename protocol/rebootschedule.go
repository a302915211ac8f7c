package protocol

// When a reboot policy makes things happen: the deadline, the prompts and
// their deferrals, the warnings, and the quiet hours that hold prompts
// back. The agent runs these times and the planner shows the same ones, so
// they are pure functions of the policy and the moments given. All local
// time arithmetic is in the policy's Timezone, through time.Date, so a
// span of quiet hours keeps its wall-clock edges across a change of
// daylight saving time.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RebootSchedule is a RebootPolicy read into durations and a location.
type RebootSchedule struct {
	Mode string
	// Deadline is how long after the job's end the reboot happens at the
	// latest (force, always, prompt).
	Deadline  time.Duration
	Deferrals int
	DeferFor  time.Duration
	// Warnings are offsets before the reboot, longest first.
	Warnings []time.Duration
	// quiet is nil when the policy has no quiet hours.
	quiet *quietSpan
}

// quietSpan is QuietHours in minutes of the local day, in loc.
type quietSpan struct {
	start, end int
	loc        *time.Location
}

// ParseRebootSchedule reads p. Its errors name the field at fault.
func ParseRebootSchedule(p RebootPolicy) (RebootSchedule, error) {
	s := RebootSchedule{Mode: p.Mode, Deferrals: p.Deferrals}
	if !slices.Contains(RebootModes, p.Mode) {
		return s, fmt.Errorf("reboot mode %q: want one of %s", p.Mode, strings.Join(RebootModes, ", "))
	}
	var err error
	if s.Deadline, err = parsePolicyDuration("deadline", p.Deadline); err != nil {
		return s, err
	}
	if s.DeferFor, err = parsePolicyDuration("deferFor", p.DeferFor); err != nil {
		return s, err
	}
	if p.Deferrals < 0 {
		return s, fmt.Errorf("reboot deferrals %d: must not be negative", p.Deferrals)
	}
	if p.Deferrals > 0 && s.DeferFor <= 0 {
		return s, fmt.Errorf("reboot deferrals %d: deferFor must be a positive duration", p.Deferrals)
	}
	for i, w := range p.Warnings {
		d, err := parsePolicyDuration(fmt.Sprintf("warnings[%d]", i), w)
		if err != nil {
			return s, err
		}
		if d <= 0 {
			return s, fmt.Errorf("reboot warnings[%d] %q: must be positive", i, w)
		}
		s.Warnings = append(s.Warnings, d)
	}
	slices.SortFunc(s.Warnings, func(a, b time.Duration) int { return int(b - a) })
	if p.QuietHours != nil {
		q, err := parseQuietHours(*p.QuietHours, p.Timezone)
		if err != nil {
			return s, err
		}
		s.quiet = q
	}
	return s, nil
}

func parsePolicyDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("reboot %s %q: not a duration such as \"4h\"", field, v)
	}
	if d < 0 {
		return 0, fmt.Errorf("reboot %s %q: must not be negative", field, v)
	}
	return d, nil
}

func parseQuietHours(q QuietHours, tz string) (*quietSpan, error) {
	if tz == "" {
		return nil, errors.New("reboot quietHours: no timezone to read them in")
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("reboot timezone %q: %w", tz, err)
	}
	start, err := parseClock("quietHours.start", q.Start)
	if err != nil {
		return nil, err
	}
	end, err := parseClock("quietHours.end", q.End)
	if err != nil {
		return nil, err
	}
	if start == end {
		return nil, fmt.Errorf("reboot quietHours %s to %s: start and end are the same; give a span", q.Start, q.End)
	}
	return &quietSpan{start: start, end: end, loc: loc}, nil
}

// parseClock reads "HH:MM" into minutes after midnight.
func parseClock(field, v string) (int, error) {
	h, m, ok := strings.Cut(v, ":")
	hh, herr := strconv.Atoi(h)
	mm, merr := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || herr != nil || merr != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("reboot %s %q: want a local time HH:MM", field, v)
	}
	return hh*60 + mm, nil
}

// RebootDeadline is when the endpoint reboots at the latest: the job's
// end plus Deadline.
func (s RebootSchedule) RebootDeadline(jobEnd time.Time) time.Time {
	return jobEnd.Add(s.Deadline)
}

// InQuietHours reports whether t falls in the quiet hours (never when the
// policy has none).
func (s RebootSchedule) InQuietHours(t time.Time) bool {
	if s.quiet == nil {
		return false
	}
	lt := t.In(s.quiet.loc)
	m := lt.Hour()*60 + lt.Minute()
	if s.quiet.start < s.quiet.end {
		return m >= s.quiet.start && m < s.quiet.end
	}
	return m >= s.quiet.start || m < s.quiet.end
}

// OutOfQuietHours is t, or, when t falls in the quiet hours, their end: the
// first moment a prompt may be shown. The end is the wall-clock time End
// on the right local day, so it moves with daylight saving time (an end
// that a spring-forward gap skips is the moment after the gap).
func (s RebootSchedule) OutOfQuietHours(t time.Time) time.Time {
	if !s.InQuietHours(t) {
		return t
	}
	lt := t.In(s.quiet.loc)
	day := lt
	if s.quiet.start > s.quiet.end && lt.Hour()*60+lt.Minute() >= s.quiet.start {
		// Before midnight in a span that crosses it: it ends tomorrow.
		day = time.Date(lt.Year(), lt.Month(), lt.Day()+1, 12, 0, 0, 0, s.quiet.loc)
	}
	end := time.Date(day.Year(), day.Month(), day.Day(), s.quiet.end/60, s.quiet.end%60, 0, 0, s.quiet.loc)
	if le := end.In(s.quiet.loc); !end.After(t) || le.Hour()*60+le.Minute() != s.quiet.end {
		// A spring-forward gap skips the end's wall-clock time: the quiet
		// hours end when the clock jumps past it.
		end = t.Truncate(time.Minute)
		for s.InQuietHours(end) || !end.After(t) {
			end = end.Add(time.Minute)
		}
	}
	return end
}

// PromptStep is the next thing a prompt-mode reboot does.
type PromptStep struct {
	// At is when it happens.
	At time.Time
	// Prompt is set when the users are asked at At (a deferral is left);
	// otherwise the endpoint reboots at At.
	Prompt bool
}

// NextPromptStep says what a prompt-mode reboot does next, for a job that
// ended at jobEnd whose users deferred deferralsUsed times, the last at
// lastDeferral (zero when none). The first prompt is at the job's end, a
// later one DeferFor after the last deferral, either moved out of the
// quiet hours; when no deferral is left that moment is the reboot itself,
// and nothing goes past the deadline.
func (s RebootSchedule) NextPromptStep(jobEnd time.Time, deferralsUsed int, lastDeferral time.Time) PromptStep {
	deadline := s.RebootDeadline(jobEnd)
	at := jobEnd
	if deferralsUsed > 0 && !lastDeferral.IsZero() {
		at = lastDeferral.Add(s.DeferFor)
	}
	at = s.OutOfQuietHours(at)
	if !at.Before(deadline) {
		return PromptStep{At: deadline}
	}
	return PromptStep{At: at, Prompt: deferralsUsed < s.Deferrals}
}

// WarningTimes are the moments users are warned of a reboot at rebootAt,
// earliest first; those before notBefore (a warning whose time passed
// before the reboot was planned) are left out.
func (s RebootSchedule) WarningTimes(rebootAt, notBefore time.Time) []time.Time {
	var out []time.Time
	for _, w := range s.Warnings {
		if at := rebootAt.Add(-w); !at.Before(notBefore) {
			out = append(out, at)
		}
	}
	return out
}
