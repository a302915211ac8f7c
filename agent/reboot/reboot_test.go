package reboot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/protocol"
)

// world is a scheduler's surroundings: a clock moved by hand, the people
// at the endpoint, and the reboots done.
type world struct {
	now     time.Time
	asked   []time.Time
	told    []time.Time
	answer  notify.Answer
	reboots []time.Time
	fail    int // reboot commands that fail before one works
}

func (w *world) Notify(context.Context, string, string) error {
	w.told = append(w.told, w.now)
	return nil
}
func (w *world) Ask(context.Context, notify.Prompt) (notify.Answer, error) {
	w.asked = append(w.asked, w.now)
	return w.answer, nil
}

func (w *world) open(t *testing.T, dir string) *Scheduler {
	t.Helper()
	s, err := Open(Config{Dir: dir, Notifier: w, Now: func() time.Time { return w.now },
		Reboot: func(context.Context, string) error {
			if w.fail > 0 {
				w.fail--
				return errors.New("shutdown: not allowed")
			}
			w.reboots = append(w.reboots, w.now)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// until runs s until limit, stopping whenever something is due.
func (w *world) until(t *testing.T, s *Scheduler, limit time.Time) {
	t.Helper()
	for range 100 {
		next := s.Next()
		if next.IsZero() || next.After(limit) {
			w.now = limit
			return
		}
		if next.After(w.now) {
			w.now = next
		}
		if err := s.Tick(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("always due")
}

var start = time.Date(2026, 3, 7, 17, 0, 0, 0, time.UTC) // 12:00 in New York, the day before DST starts

func TestPromptsWaitForQuietHoursToEnd(t *testing.T) {
	w := &world{now: start, answer: notify.Postpone}
	s := w.open(t, t.TempDir())
	policy := protocol.RebootPolicy{Mode: protocol.RebootPrompt, Deferrals: 2, DeferFor: "8h", Deadline: "48h",
		QuietHours: &protocol.QuietHours{Start: "20:00", End: "08:00"}, Timezone: "America/New_York"}
	if err := s.Schedule("job-1", policy, true); err != nil {
		t.Fatal(err)
	}
	w.until(t, s, start.Add(72*time.Hour))
	ny, _ := time.LoadLocation("America/New_York")
	// 12:00 EST; 20:00 is quiet, so 08:00 EDT the next morning (DST began
	// overnight); the deferrals are used, so the reboot is 8h later.
	want := []time.Time{start, time.Date(2026, 3, 8, 8, 0, 0, 0, ny)}
	if d := cmp.Diff(want, w.asked); d != "" {
		t.Errorf("prompts (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]time.Time{time.Date(2026, 3, 8, 16, 0, 0, 0, ny)}, w.reboots); d != "" {
		t.Errorf("reboots (-want +got):\n%s", d)
	}
}

func TestPlanSurvivesARestartAndEndsWhenNothingIsPending(t *testing.T) {
	dir := t.TempDir()
	w := &world{now: start, answer: notify.Postpone}
	s := w.open(t, dir)
	if err := s.Observe(true); err != nil {
		t.Fatal(err)
	}
	policy := protocol.RebootPolicy{Mode: protocol.RebootPrompt, Deferrals: 3, DeferFor: "1h", Deadline: "24h"}
	if err := s.Schedule("job-1", policy, true); err != nil {
		t.Fatal(err)
	}
	w.until(t, s, start.Add(90*time.Minute))
	again := w.open(t, dir)
	want := protocol.RebootState{Mode: protocol.RebootPrompt, PendingSince: start, DeferralsUsed: 2, ScheduledAt: start.Add(24 * time.Hour)}
	if d := cmp.Diff(want, again.State()); d != "" {
		t.Errorf("state after a restart (-want +got):\n%s", d)
	}
	if ds := again.Deferrals(); len(ds) != 2 || !ds[1].At.Equal(start.Add(time.Hour)) || ds[1].Answer != notify.Postpone {
		t.Errorf("deferrals = %+v", ds)
	}
	// Someone restarted the computer: nothing pending, the plan ends.
	if err := again.Observe(false); err != nil {
		t.Fatal(err)
	}
	if again.State() != (protocol.RebootState{}) || !again.Next().IsZero() {
		t.Errorf("after the pending reboot went away: %+v, next %v", again.State(), again.Next())
	}
}

func TestASecondJobNeverPushesTheRebootLater(t *testing.T) {
	w := &world{now: start}
	s := w.open(t, t.TempDir())
	if err := s.Schedule("job-1", protocol.RebootPolicy{Mode: protocol.RebootForce, Deadline: "2h"}, true); err != nil {
		t.Fatal(err)
	}
	w.now = start.Add(time.Hour)
	if err := s.Schedule("job-2", protocol.RebootPolicy{Mode: protocol.RebootForce, Deadline: "8h"}, true); err != nil {
		t.Fatal(err)
	}
	if got := s.State().ScheduledAt; !got.Equal(start.Add(2 * time.Hour)) {
		t.Errorf("scheduled at %v, want job-1's %v", got, start.Add(2*time.Hour))
	}
	if err := s.Schedule("job-3", protocol.RebootPolicy{Mode: protocol.RebootAlways, Deadline: "10m"}, false); err != nil {
		t.Fatal(err)
	}
	if got := s.State().ScheduledAt; !got.Equal(start.Add(70 * time.Minute)) {
		t.Errorf("scheduled at %v, want job-3's sooner %v", got, start.Add(70*time.Minute))
	}
}

func TestAFailedRebootIsTriedAgain(t *testing.T) {
	w := &world{now: start, fail: 1}
	dir := t.TempDir()
	s := w.open(t, dir)
	if err := s.Schedule("job-1", protocol.RebootPolicy{Mode: protocol.RebootAlways, Deadline: "1h"}, false); err != nil {
		t.Fatal(err)
	}
	w.until(t, s, start.Add(2*time.Hour))
	if d := cmp.Diff([]time.Time{start.Add(time.Hour + retryAfter)}, w.reboots); d != "" {
		t.Errorf("reboots (-want +got):\n%s", d)
	}
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil || string(b) != "{}\n" {
		t.Errorf("state after the reboot: %q, %v", b, err)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{4 * time.Hour: "4h", 90 * time.Minute: "1h30m", 15 * time.Minute: "15m", 20 * time.Second: "less than a minute", 24 * time.Hour: "24h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
