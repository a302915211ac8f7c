package protocol

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustSchedule(t *testing.T, p RebootPolicy) RebootSchedule {
	t.Helper()
	s, err := ParseRebootSchedule(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOutOfQuietHoursAcrossDST(t *testing.T) {
	ny, berlin := mustLoc(t, "America/New_York"), mustLoc(t, "Europe/Berlin")
	nyNight := RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "22:00", End: "07:00"}, Timezone: "America/New_York"}
	berlinNight := RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "22:00", End: "06:00"}, Timezone: "Europe/Berlin"}
	nyGap := RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "01:00", End: "02:30"}, Timezone: "America/New_York"}
	berlinDay := RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "09:00", End: "17:00"}, Timezone: "Europe/Berlin"}
	tests := []struct {
		name   string
		policy RebootPolicy
		at     time.Time
		want   time.Time
		quiet  bool
	}{
		{"New York, the night clocks spring forward: quiet hours end at 07:00 EDT, 7 hours later, not 8",
			nyNight, time.Date(2026, 3, 7, 23, 0, 0, 0, ny), time.Date(2026, 3, 8, 7, 0, 0, 0, ny), true},
		{"New York, the night clocks fall back: quiet hours end at 07:00 EST, 9 hours later",
			nyNight, time.Date(2026, 10, 31, 23, 0, 0, 0, ny), time.Date(2026, 11, 1, 7, 0, 0, 0, ny), true},
		{"New York, after midnight in a span crossing it: ends the same morning",
			nyNight, time.Date(2026, 3, 8, 4, 0, 0, 0, ny), time.Date(2026, 3, 8, 7, 0, 0, 0, ny), true},
		{"New York, an end the spring-forward gap skips: quiet hours end when the clock jumps to 03:00 EDT",
			nyGap, time.Date(2026, 3, 8, 1, 30, 0, 0, ny), time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), true},
		{"Berlin, the night clocks spring forward: quiet hours end at 06:00 CEST",
			berlinNight, time.Date(2026, 3, 28, 22, 30, 0, 0, berlin), time.Date(2026, 3, 29, 6, 0, 0, 0, berlin), true},
		{"Berlin, the night clocks fall back: quiet hours end at 06:00 CET",
			berlinNight, time.Date(2026, 10, 24, 23, 0, 0, 0, berlin), time.Date(2026, 10, 25, 6, 0, 0, 0, berlin), true},
		{"Berlin, office hours as quiet hours on the fall-back day",
			berlinDay, time.Date(2026, 10, 25, 9, 0, 0, 0, berlin), time.Date(2026, 10, 25, 17, 0, 0, 0, berlin), true},
		{"outside quiet hours nothing moves",
			berlinNight, time.Date(2026, 3, 29, 6, 0, 0, 0, berlin), time.Date(2026, 3, 29, 6, 0, 0, 0, berlin), false},
		{"the end itself is outside",
			berlinDay, time.Date(2026, 10, 25, 17, 0, 0, 0, berlin), time.Date(2026, 10, 25, 17, 0, 0, 0, berlin), false},
		{"no quiet hours",
			RebootPolicy{Mode: RebootPrompt}, time.Date(2026, 3, 8, 3, 0, 0, 0, ny), time.Date(2026, 3, 8, 3, 0, 0, 0, ny), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.policy)
			if got := s.InQuietHours(tt.at); got != tt.quiet {
				t.Errorf("InQuietHours(%v) = %v, want %v", tt.at, got, tt.quiet)
			}
			if got := s.OutOfQuietHours(tt.at); !got.Equal(tt.want) {
				t.Errorf("OutOfQuietHours(%v) = %v, want %v", tt.at, got, tt.want.In(tt.at.Location()))
			}
		})
	}
}

func TestNextPromptStep(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	// A job ending at 18:00 EST the evening before clocks spring forward.
	end := time.Date(2026, 3, 7, 18, 0, 0, 0, ny)
	h := func(d float64) time.Time { return end.Add(time.Duration(math.Round(d*60)) * time.Minute) }
	base := RebootPolicy{Mode: RebootPrompt, Deferrals: 3, DeferFor: "4h", Deadline: "10h"}
	quiet := base
	quiet.Deadline, quiet.QuietHours, quiet.Timezone = "24h", &QuietHours{Start: "22:00", End: "07:00"}, "America/New_York"
	long := base
	long.Deadline = "24h"
	tests := []struct {
		name         string
		policy       RebootPolicy
		used         int
		lastDeferral time.Time
		want         PromptStep
	}{
		{"first prompt at the job's end", base, 0, time.Time{}, PromptStep{At: end, Prompt: true}},
		{"after one deferral, DeferFor after it", base, 1, h(0.1), PromptStep{At: h(4.1), Prompt: true}},
		{"after two deferrals", base, 2, h(4.2), PromptStep{At: h(8.2), Prompt: true}},
		{"after three deferrals the next prompt would pass the deadline: reboot at the deadline", base, 3, h(8.3), PromptStep{At: h(10)}},
		{"no deferral left before the deadline: reboot DeferFor after the last", long, 3, h(8.3), PromptStep{At: h(12.3)}},
		{"a prompt due in quiet hours waits for 07:00 EDT, across the spring-forward gap", quiet, 1, h(0.5),
			PromptStep{At: time.Date(2026, 3, 8, 7, 0, 0, 0, ny), Prompt: true}},
		{"a reboot after the last deferral is not during quiet hours either", quiet, 3, h(3), PromptStep{At: time.Date(2026, 3, 8, 7, 0, 0, 0, ny)}},
		{"quiet hours never move the deadline", RebootPolicy{Mode: RebootPrompt, Deferrals: 1, DeferFor: "1h", Deadline: "5h",
			QuietHours: &QuietHours{Start: "22:00", End: "07:00"}, Timezone: "America/New_York"}, 1, h(4), PromptStep{At: h(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustSchedule(t, tt.policy).NextPromptStep(end, tt.used, tt.lastDeferral)
			if !got.At.Equal(tt.want.At) || got.Prompt != tt.want.Prompt {
				t.Errorf("NextPromptStep = %v prompt=%v, want %v prompt=%v", got.At.In(ny), got.Prompt, tt.want.At.In(ny), tt.want.Prompt)
			}
		})
	}
}

func TestWarningTimes(t *testing.T) {
	s := mustSchedule(t, RebootPolicy{Mode: RebootForce, Deadline: "4h", Warnings: []string{"15m", "1h", "5m"}})
	reboot := time.Date(2026, 3, 11, 2, 0, 0, 0, time.UTC)
	got := s.WarningTimes(reboot, reboot.Add(-30*time.Minute))
	want := []time.Time{reboot.Add(-15 * time.Minute), reboot.Add(-5 * time.Minute)}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warning times (-want +got):\n%s", d)
	}
	if d := s.RebootDeadline(reboot.Add(-4 * time.Hour)); !d.Equal(reboot) {
		t.Errorf("deadline = %v, want %v", d, reboot)
	}
}

func TestParseRebootScheduleErrors(t *testing.T) {
	tests := []struct {
		policy RebootPolicy
		want   string
	}{
		{RebootPolicy{Mode: "sometimes"}, `reboot mode "sometimes"`},
		{RebootPolicy{Mode: RebootForce, Deadline: "tomorrow"}, `reboot deadline "tomorrow": not a duration`},
		{RebootPolicy{Mode: RebootPrompt, Deferrals: 2}, "deferFor must be a positive duration"},
		{RebootPolicy{Mode: RebootPrompt, Deferrals: -1, DeferFor: "1h"}, "must not be negative"},
		{RebootPolicy{Mode: RebootForce, Warnings: []string{"0s"}}, "warnings[0]"},
		{RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "22:00", End: "07:00"}}, "no timezone"},
		{RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "22:00", End: "07:00"}, Timezone: "Mars/Olympus"}, `timezone "Mars/Olympus"`},
		{RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "7:00", End: "09:00"}, Timezone: "UTC"}, `quietHours.start "7:00"`},
		{RebootPolicy{Mode: RebootPrompt, QuietHours: &QuietHours{Start: "09:00", End: "09:00"}, Timezone: "UTC"}, "give a span"},
	}
	for _, tt := range tests {
		_, err := ParseRebootSchedule(tt.policy)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRebootSchedule(%+v) = %v, want an error with %q", tt.policy, err, tt.want)
		}
	}
}
