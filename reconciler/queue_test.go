package reconciler

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/clock"
)

// TestQueueCoalescesAndSerialises: a burst of adds for one key becomes one
// run, a key is never run twice at once, and a key added while it runs
// runs once more afterwards.
func TestQueueCoalescesAndSerialises(t *testing.T) {
	q := newQueue(clock.Real{})
	for range 100 {
		q.Add("acme")
	}
	q.Add("globex")

	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		runs    = map[string]int{}
		running = map[string]bool{}
	)
	started := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		q.Run(ctx, 4, func(ctx context.Context, key string) error {
			mu.Lock()
			if running[key] {
				t.Errorf("%s runs twice at once", key)
			}
			running[key] = true
			runs[key]++
			n := runs[key]
			mu.Unlock()
			if key == "acme" && n == 1 {
				close(started)
				<-release // hold the first run while acme is added again
			}
			mu.Lock()
			running[key] = false
			if key == "acme" && n == 2 {
				close(done)
			}
			mu.Unlock()
			return nil
		})
	}()
	<-started
	q.Add("acme")
	q.Add("acme")
	close(release)
	<-done
	cancel()

	mu.Lock()
	defer mu.Unlock()
	if runs["acme"] != 2 {
		t.Errorf("acme ran %d times, want 2 (the burst once, the adds during the run once)", runs["acme"])
	}
}

// TestQueueRetriesFailuresWithBackoff: a key whose processing fails runs
// again after a backoff that doubles, a success resets it, and an event for
// the key during the backoff runs it at once.
func TestQueueRetriesFailuresWithBackoff(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	q := newQueue(clk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := make(chan int, 10)
	fail := map[int]bool{1: true, 2: true, 3: true, 5: true}
	n := 0
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		q.Run(ctx, 1, func(ctx context.Context, key string) error {
			n++
			runs <- n
			if fail[n] {
				return errors.New("store unavailable")
			}
			return nil
		})
	}()
	// waitRun waits for the next run; a hang here is the failure.
	waitRun := func(want int) {
		t.Helper()
		if got := <-runs; got != want {
			t.Fatalf("run %d, want run %d", got, want)
		}
	}
	// waitArmed waits until the failed run's retry is armed.
	waitArmed := func() {
		t.Helper()
		for clk.Pending() == 0 {
			runtime.Gosched()
		}
	}
	noRun := func(after string) {
		t.Helper()
		select {
		case got := <-runs:
			t.Fatalf("run %d %s, before its backoff passed", got, after)
		default:
		}
	}

	q.Add("acme")
	waitRun(1)
	waitArmed()
	clk.Advance(retryBase - time.Millisecond)
	noRun("199ms after the first failure")
	clk.Advance(time.Millisecond)
	waitRun(2)
	waitArmed()
	clk.Advance(2*retryBase - time.Millisecond)
	noRun("399ms after the second failure")
	clk.Advance(time.Millisecond)
	waitRun(3)
	waitArmed()
	// An event during the backoff runs the key at once.
	q.Add("acme")
	waitRun(4)
	// Run 4 succeeded: the next failure starts the backoff from the base.
	q.Add("acme")
	waitRun(5)
	waitArmed()
	if next, _ := clk.Next(); next.Sub(clk.Now()) != retryBase {
		t.Errorf("backoff after a success and a new failure = %v, want %v", next.Sub(clk.Now()), retryBase)
	}
	cancel()
	<-stopped
	if clk.Pending() != 0 {
		t.Errorf("%d retries still armed after Run returned", clk.Pending())
	}
}

func TestBackoffIsBounded(t *testing.T) {
	for n, want := range map[int]time.Duration{1: retryBase, 2: 2 * retryBase, 3: 4 * retryBase, 40: retryMax, 1000: retryMax} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestEarliest(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	past, soon, later := now.Add(-time.Hour), now.Add(time.Minute), now.Add(time.Hour)
	tests := []struct {
		name string
		a, b time.Time
		want time.Time
	}{
		{"nothing yet, a future time", time.Time{}, soon, soon},
		{"an earlier future time wins", later, soon, soon},
		{"a later time does not", soon, later, soon},
		{"a past time is ignored", soon, past, soon},
		{"nothing and a past time stay nothing", time.Time{}, past, time.Time{}},
	}
	for _, tt := range tests {
		if got := earliest(tt.a, tt.b, now); !got.Equal(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
