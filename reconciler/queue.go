package reconciler

import (
	"context"
	"sync"
)

// queue is a keyed work queue in the manner of controller-runtime's: a key
// added while it waits is not added twice (a burst of reports for one client
// becomes one re-plan), and a key is never processed by two workers at once
// (a key added while it is being processed runs once more afterwards, so no
// event is lost).
type queue struct {
	mu sync.Mutex // guards everything below
	// order holds waiting keys first in, first out.
	order []string
	// waiting holds the keys in order.
	waiting map[string]bool
	// running holds the keys a worker is processing.
	running map[string]bool
	// again holds running keys that were added while running.
	again map[string]bool
	// ready has a token when order may be non-empty; buffered by one so Add
	// never blocks.
	ready chan struct{}
}

func newQueue() *queue {
	return &queue{
		waiting: make(map[string]bool),
		running: make(map[string]bool),
		again:   make(map[string]bool),
		ready:   make(chan struct{}, 1),
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

// done marks key processed, re-adding it if it was added meanwhile.
func (q *queue) done(key string) {
	q.mu.Lock()
	delete(q.running, key)
	again := q.again[key]
	delete(q.again, key)
	q.mu.Unlock()
	if again {
		q.Add(key)
	}
}

// Run processes keys with n workers until ctx ends, and returns once every
// worker has finished its current key.
func (q *queue) Run(ctx context.Context, n int, process func(ctx context.Context, key string)) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := q.next(ctx)
				if !ok {
					return
				}
				process(ctx, key)
				q.done(key)
			}
		}()
	}
	wg.Wait()
}
