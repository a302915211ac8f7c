package reconciler

import (
	"context"
	"sync"
	"testing"
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
