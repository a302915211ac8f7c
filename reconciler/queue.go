package reconciler

import (
	"context"
	"sync"
	"time"

	"github.com/patchline/patchline/internal/clock"
)

// queue is a keyed work queue in the manner of controller-runtime's: a key
// added while it waits is not added twice (a burst of reports for one client
// becomes one re-plan), and a key is never processed by two workers at once
// (a key added while it is being processed runs once more afterwards, so no
// event is lost). A key whose processing fails is added again after a
// backoff that doubles with each consecutive failure, so a client whose
// re-plan keeps failing (a full disk, a store that is down) is retried
// without spinning, and without holding the other clients back.
type queue struct {
	clock clock.Clock

	mu sync.Mutex // guards everything below
	// order holds waiting keys first in, first out.
	order []string
	// waiting holds the keys in order.
	waiting map[string]bool
	// running holds the keys a worker is processing.
	running map[string]bool
	// again holds running keys that were added while running.
	again map[string]bool
	// failures counts each key's consecutive failures.
	failures map[string]int
	// retries holds the timer of each key waiting out its backoff.
	retries map[string]clock.Timer
	// stopped is set once Run has returned: no retry is armed after it.
	stopped bool
	// ready has a token when order may be non-empty; buffered by one so Add
	// never blocks.
	ready chan struct{}
}

// Backoff of a failing key: retryBase after the first failure, doubling up
// to retryMax.
const (
	retryBase = 200 * time.Millisecond
	retryMax  = 5 * time.Minute
)

func newQueue(clk clock.Clock) *queue {
	return &queue{
		clock:    clk,
		waiting:  make(map[string]bool),
		running:  make(map[string]bool),
		again:    make(map[string]bool),
		failures: make(map[string]int),
		retries:  make(map[string]clock.Timer),
		ready:    make(chan struct{}, 1),
	}
}

// Add schedules key.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.running[key]:
		q.again[key] = true
		return
	case q.waiting[key]:
		return
	}
	q.waiting[key] = true
	q.order = append(q.order, key)
	q.signal()
}

// signal wakes one worker; q.mu must be held.
func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// next returns the next key to process, or false when ctx ends.
func (q *queue) next(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if len(q.order) > 0 {
			key := q.order[0]
			q.order = q.order[1:]
			delete(q.waiting, key)
			q.running[key] = true
			if len(q.order) > 0 {
				q.signal()
			}
			q.mu.Unlock()
			return key, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.ready:
		}
	}
}

// done marks key processed. A key added meanwhile runs again at once; a
// key that failed runs again after its backoff (or at once, when an event
// added it meanwhile: the event may be what fixes it).
func (q *queue) done(key string, err error) {
	q.mu.Lock()
	delete(q.running, key)
	again := q.again[key]
	delete(q.again, key)
	if t, ok := q.retries[key]; ok {
		t.Stop()
		delete(q.retries, key)
	}
	if err == nil {
		delete(q.failures, key)
	} else {
		q.failures[key]++
		if !again && !q.stopped {
			d := backoff(q.failures[key])
			q.retries[key] = q.clock.AfterFunc(d, func() { q.retry(key) })
		}
	}
	q.mu.Unlock()
	if again {
		q.Add(key)
	}
}

// retry adds key once its backoff has passed.
func (q *queue) retry(key string) {
	q.mu.Lock()
	delete(q.retries, key)
	q.mu.Unlock()
	q.Add(key)
}

// backoff is the wait after the n-th consecutive failure.
func backoff(n int) time.Duration {
	d := retryBase
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// Run processes keys with n workers until ctx ends, and returns once every
// worker has finished its current key and no retry is pending.
// It may run again after it returned (a replica's next term as leader),
// and then takes up the keys still waiting.
func (q *queue) Run(ctx context.Context, n int, process func(ctx context.Context, key string) error) {
	q.mu.Lock()
	q.stopped = false
	q.mu.Unlock()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				key, ok := q.next(ctx)
				if !ok {
					return
				}
				q.done(key, process(ctx, key))
			}
		})
	}
	wg.Wait()
	q.mu.Lock()
	q.stopped = true
	for key, t := range q.retries {
		t.Stop()
		delete(q.retries, key)
	}
	q.mu.Unlock()
}
