package api

import (
	"sync"
	"time"
)

// bucket is the state of a token bucket: it holds up to burst tokens,
// refilled at rate per second, and every allowed request takes one. Its
// users keep burst and rate, and guard it.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for the time since its last take and takes a token if
// there is one; otherwise it says how long until there is.
func (b *bucket) take(now time.Time, burst, rate float64) (ok bool, wait time.Duration) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// refilled reports whether b holds burst tokens again by now, which makes
// it the same as a new bucket.
func (b *bucket) refilled(now time.Time, burst, rate float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// tokenBucket is one rate limiter.
type tokenBucket struct {
	burst, rate float64
	now         func() time.Time

	mu sync.Mutex // guards b
	b  bucket
}

func newTokenBucket(burst, rate float64, now func() time.Time) *tokenBucket {
	return &tokenBucket{burst: burst, rate: rate, now: now, b: bucket{tokens: burst, last: now()}}
}

// take takes a token if there is one; otherwise it says how long until
// there is.
func (tb *tokenBucket) take() (ok bool, wait time.Duration) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.b.take(tb.now(), tb.burst, tb.rate)
}

// keyedBuckets is a rate limiter per key (a source address, a client),
// each key with its own bucket of burst and rate. It holds at most max
// buckets: a bucket that has refilled is dropped, at most once every
// sweepEvery, when a new key comes; when max keys still hold tokens taken,
// new keys share one more bucket until some refill. So the memory stays
// bounded however many keys a caller makes up, and a key that made up
// many cannot take more than one bucket's share.
type keyedBuckets[K comparable] struct {
	burst, rate float64
	max         int
	now         func() time.Time

	mu      sync.Mutex // guards buckets, overflow and swept
	buckets map[K]*bucket
	// overflow is shared by new keys while buckets is full.
	overflow bucket
	// swept is when refilled buckets were last dropped.
	swept time.Time
}

// sweepEvery is how often a keyedBuckets looks for refilled buckets: at
// its cap of 10,000 keys, one pass is well under a millisecond.
const sweepEvery = time.Second

func newKeyedBuckets[K comparable](burst, rate float64, max int, now func() time.Time) *keyedBuckets[K] {
	return &keyedBuckets[K]{
		burst: burst, rate: rate, max: max, now: now,
		buckets:  make(map[K]*bucket),
		overflow: bucket{tokens: burst, last: now()},
	}
}

// take takes a token from key's bucket if there is one; otherwise it says
// how long until there is.
func (kb *keyedBuckets[K]) take(key K) (ok bool, wait time.Duration) {
	kb.mu.Lock()
	defer kb.mu.Unlock()
	now := kb.now()
	b, found := kb.buckets[key]
	if !found {
		kb.sweep(now)
		if len(kb.buckets) >= kb.max {
			return kb.overflow.take(now, kb.burst, kb.rate)
		}
		b = &bucket{tokens: kb.burst, last: now}
		kb.buckets[key] = b
	}
	return b.take(now, kb.burst, kb.rate)
}

// sweep drops the buckets that have refilled, unless it ran less than
// sweepEvery ago.
func (kb *keyedBuckets[K]) sweep(now time.Time) {
	if now.Sub(kb.swept) < sweepEvery {
		return
	}
	kb.swept = now
	for k, b := range kb.buckets {
		if b.refilled(now, kb.burst, kb.rate) {
			delete(kb.buckets, k)
		}
	}
}
