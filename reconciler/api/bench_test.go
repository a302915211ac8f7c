package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"github.com/patchline/patchline/protocol"
)

// BenchmarkNotifyAmong10kWaiters is the cost of waking one endpoint's poll
// while 10,000 endpoints wait.
func BenchmarkNotifyAmong10kWaiters(b *testing.B) {
	e := newEnv(b)
	const n = 10_000
	chans := make([]chan struct{}, n)
	for i := range n {
		ch, ok := e.api.waiters.add(fmt.Sprint("ep-", i))
		if !ok {
			b.Fatal("drained")
		}
		chans[i] = ch
	}
	endpoints := make([]string, n)
	for i := range n {
		endpoints[i] = fmt.Sprint("ep-", i)
	}
	i := 0
	for b.Loop() {
		e.api.Notify(endpoints[i%n])
		<-chans[i%n]
		i++
	}
}

// BenchmarkPark10kLongPolls parks 10,000 authenticated long-polls (each
// checks its node key and reads its due jobs in SQLite), then drains them.
// It reports the memory each waiting poll holds.
func BenchmarkPark10kLongPolls(b *testing.B) {
	e := newEnv(b)
	a := e.enroll("WS-001")
	const n = 10_000
	for b.Loop() {
		b.StopTimer()
		e2 := newEnv(b, func(c *Config) { c.Store = e.db })
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()

		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				rec := serve(e2, http.MethodGet, protocol.PathJobs+"?wait=10m", nil, a.auth())
				if rec.Code != http.StatusOK {
					b.Errorf("poll: %d %s", rec.Code, rec.Body)
				}
			})
		}
		e2.waitForPolls(a.endpoint, n)

		b.StopTimer()
		var during runtime.MemStats
		runtime.ReadMemStats(&during)
		b.ReportMetric(float64(int64(during.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-bytes/poll")
		b.StartTimer()

		e2.api.Drain()
		wg.Wait()
	}
}

// BenchmarkAdminTokenCheck is the cost of checking a stored token (its
// hash, a lookup among 100 tokens, the scope) on each admin request; the
// store is read once, when the first token is checked.
func BenchmarkAdminTokenCheck(b *testing.B) {
	e := newEnv(b)
	var secret string
	for i := range 100 {
		secret = e.newToken(fmt.Sprint("token-", i), nil, protocol.ScopeRead)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	for b.Loop() {
		c, err := e.api.authenticate(req)
		if err != nil || !c.may(protocol.ScopeRead) {
			b.Fatalf("token refused: %v", err)
		}
	}
}
