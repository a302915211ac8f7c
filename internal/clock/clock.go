// Package clock puts the time behind an interface, so that code that waits
// (timers for a window opening, a soak ending, a retry's backoff) can be
// driven by tests without sleeping. Production code uses Real; tests use
// Fake and move it forward with Advance.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
	// After sends the time on the returned channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet, and reports
	// whether it did so.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// After is time.After.
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Fake is a clock that moves only when told to. It is safe for concurrent
// use.
type Fake struct {
	mu sync.Mutex // guards now, timers and seq
	// now is the fake time.
	now time.Time
	// timers are the pending calls, in no particular order.
	timers []*fakeTimer
	// seq numbers timers so that those due at the same moment fire in the
	// order they were made.
	seq uint64
}

// NewFake returns a fake clock standing at now.
func NewFake(now time.Time) *Fake { return &Fake{now: now} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// AfterFunc arranges f to run when the clock is advanced d or more. A
// non-positive d runs f on the next Advance.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &fakeTimer{clock: f, at: f.now.Add(d), seq: f.seq, fn: fn}
	f.timers = append(f.timers, t)
	return t
}

// After returns a channel that receives the fake time once the clock is
// advanced d or more.
func (f *Fake) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	f.AfterFunc(d, func() { ch <- f.Now() })
	return ch
}

// Advance moves the clock forward by d and runs, in order of their due
// time, the calls that became due. Each call runs to completion before the
// next (unlike Real, which runs them concurrently), so a test sees their
// effects when Advance returns; a call that starts other goroutines is the
// test's to wait for.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	now := f.now
	var due, keep []*fakeTimer
	for _, t := range f.timers {
		if !t.at.After(now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	f.timers = keep
	f.mu.Unlock()
	sort.Slice(due, func(i, j int) bool {
		if !due[i].at.Equal(due[j].at) {
			return due[i].at.Before(due[j].at)
		}
		return due[i].seq < due[j].seq
	})
	for _, t := range due {
		t.fn()
	}
}

// Pending is how many calls are waiting to be run.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next is the due time of the earliest pending call, and false when none
// is pending.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, t := range f.timers {
		if next.IsZero() || t.at.Before(next) {
			next = t.at
		}
	}
	return next, !next.IsZero()
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	seq   uint64
	fn    func()
}

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.timers {
		if p == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}
