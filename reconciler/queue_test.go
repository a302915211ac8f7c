package reconciler

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestQueueCoalescesAndSerialises: a burst of adds for one key becomes one
// run, a key is never run twice at once, and a key added while it runs
// runs once more afterwards.
func TestQueueCoalescesAndSerialises(t *testing.T) {
	q := newQueue()
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
		q.Run(ctx, 4, func(ctx context.Context, key string) {
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
