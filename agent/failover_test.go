package agent

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// replica serves the fake controller's API on a server of its own, as one
// patchd replica of several on one store. It counts the requests it gets
// and can answer every one with a fixed status instead, as a load
// balancer in front of a dead replica does (502, 503, 504) or a working
// replica that refuses (401).
type replica struct {
	srv *httptest.Server
	// polls receives a value when a job poll has arrived and is about to
	// be held.
	polls chan struct{}

	mu       sync.Mutex // guards requests
	requests int
}

func newReplica(t *testing.T, fc *fakeController, status int) *replica {
	t.Helper()
	r := &replica{polls: make(chan struct{}, 4)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		if status != 0 {
			// What a proxy answers: not the controller's error envelope.
			http.Error(w, "upstream connect error", status)
			return
		}
		if req.Method == http.MethodGet && req.URL.Path == protocol.PathJobs {
			r.polls <- struct{}{}
		}
		fc.srv.Config.Handler.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// seen is how many requests the replica got.
func (r *replica) seen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// kill ends the replica as kill -9 ends a patchd: every connection is
// closed under the requests it carries, and the port stops listening.
func (r *replica) kill() {
	r.srv.CloseClientConnections()
	r.srv.Close()
}

// closedURL is the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// silentTLSURL is the https URL of a loopback port that accepts
// connections and never answers: the TLS handshake times out.
func silentTLSURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "https://" + l.Addr().String()
}

// replicaClient is an API client of the controller at urls, with the
// identity of an agent the harness enrolled, and backoff waits recorded
// and shortened, as enrolledClient's.
func replicaClient(t *testing.T, h *harness, urls ...string) (*client, func() int) {
	t.Helper()
	enrolled := h.enrolled(t).api
	cfg := h.config()
	c, err := newClient(strings.Join(urls, ","), false, nil, netip.Addr{},
		retryPolicy{max: cfg.RetryMax, waitMin: cfg.RetryWaitMin, waitMax: cfg.RetryWaitMax}, cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	c.endpoint, c.nodeKey = enrolled.endpoint, enrolled.nodeKey
	if tr, ok := c.http.HTTPClient.Transport.(*http.Transport); ok {
		// The silent replica's handshake ends sooner than in the field.
		tr.TLSHandshakeTimeout = 200 * time.Millisecond
	}
	var mu sync.Mutex
	waits := 0
	c.http.Backoff = func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		waits++
		return time.Millisecond
	}
	return c, func() int {
		mu.Lock()
		defer mu.Unlock()
		return waits
	}
}

// TestFailover: a call moves to the next controller URL when its
// replica is unreachable, and the calls after it stay there; an answer
// from a working replica, even a refusal, is the controller's word.
func TestFailover(t *testing.T) {
	const down = -1 // a URL whose port nothing listens on
	const silent = -2
	tests := []struct {
		name string
		// first is how the first URL answers: down, silent, or a status
		// for every request.
		first int
		// wantErr is the error code of the first call.
		wantErr protocol.Code
		// wantFirst and wantSecond are the requests the first URL and the
		// working second one got over two calls.
		wantFirst, wantSecond int
		wantMoves             int
	}{
		{name: "first replica down: the call moves on and the next call goes there", first: down, wantSecond: 2, wantMoves: 1},
		{name: "first replica never finishes the TLS handshake", first: silent, wantSecond: 2, wantMoves: 1},
		{name: "a proxy answers 503 for a dead replica", first: http.StatusServiceUnavailable, wantFirst: 1, wantSecond: 2, wantMoves: 1},
		{name: "a proxy answers 502 for a dead replica", first: http.StatusBadGateway, wantFirst: 1, wantSecond: 2, wantMoves: 1},
		{name: "a proxy answers 504 for a replica that does not answer", first: http.StatusGatewayTimeout, wantFirst: 1, wantSecond: 2, wantMoves: 1},
		{
			name: "a 401 is the controller's answer: no move, and the next call asks the same replica", first: http.StatusUnauthorized,
			wantErr: protocol.CodeUnauthorized, wantFirst: 2,
		},
		{
			name: "a 500 is retried at the same replica, which answered", first: http.StatusInternalServerError,
			wantErr: protocol.CodeInternal, wantFirst: 2 * 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			second := newReplica(t, h.fc, 0)
			var first *replica
			var firstURL string
			switch tt.first {
			case down:
				firstURL = closedURL(t)
			case silent:
				firstURL = silentTLSURL(t)
			default:
				first = newReplica(t, h.fc, tt.first)
				firstURL = first.srv.URL
			}
			c, _ := replicaClient(t, h, firstURL, second.srv.URL)
			_, err := c.report(t.Context(), protocol.Report{Seq: 1})
			if got := errorCode(err); got != tt.wantErr {
				t.Fatalf("first report: error %v (code %q), want code %q", err, got, tt.wantErr)
			}
			_, err = c.report(t.Context(), protocol.Report{Seq: 2})
			if got := errorCode(err); got != tt.wantErr {
				t.Fatalf("second report: error %v (code %q), want code %q", err, got, tt.wantErr)
			}
			if first != nil && first.seen() != tt.wantFirst {
				t.Errorf("first URL got %d requests, want %d", first.seen(), tt.wantFirst)
			}
			if second.seen() != tt.wantSecond {
				t.Errorf("second URL got %d requests, want %d", second.seen(), tt.wantSecond)
			}
			moves := strings.Count(h.logs.String(), "moving to the next controller URL")
			if moves != tt.wantMoves {
				t.Errorf("logged %d moves, want %d:\n%s", moves, tt.wantMoves, h.logs.String())
			}
		})
	}
}

// TestFailoverWrapsAroundAndIsBounded: a call tries the URLs in order,
// wrapping around, within its retries; when every replica is down it
// fails after them, and the next call starts where the last one stopped.
func TestFailoverWrapsAroundAndIsBounded(t *testing.T) {
	h := newHarness(t)
	a, b := newReplica(t, h.fc, http.StatusServiceUnavailable), newReplica(t, h.fc, http.StatusBadGateway)
	live := newReplica(t, h.fc, 0)
	// RetryMax is 2: three attempts per call.
	c, waits := replicaClient(t, h, a.srv.URL, b.srv.URL, closedURL(t), live.srv.URL)
	if _, err := c.report(t.Context(), protocol.Report{Seq: 1}); errorCode(err) != "" || err == nil {
		t.Fatalf("report with three replicas down = %v, want a transport error after the retries", err)
	}
	if a.seen() != 1 || b.seen() != 1 || live.seen() != 0 || waits() != 2 {
		t.Errorf("requests %d, %d, live %d after %d waits; want one each to the dead ones, none to the live one yet, 2 waits",
			a.seen(), b.seen(), live.seen(), waits())
	}
	if _, err := c.report(t.Context(), protocol.Report{Seq: 2}); err != nil {
		t.Fatalf("the next call: %v, want it answered by the fourth URL", err)
	}
	if a.seen() != 1 || b.seen() != 1 || live.seen() != 1 {
		t.Errorf("requests %d, %d, live %d; want the next call to go straight to the live replica", a.seen(), b.seen(), live.seen())
	}
}

// TestLongPollMovesWhenItsReplicaDies: a job long-poll held by a replica
// that dies is taken up by the next one, which hands out the job.
func TestLongPollMovesWhenItsReplicaDies(t *testing.T) {
	h := newHarness(t)
	a, b := newReplica(t, h.fc, 0), newReplica(t, h.fc, 0)
	c, _ := replicaClient(t, h, a.srv.URL, b.srv.URL)
	type polled struct {
		jobs []protocol.SignedJob
		err  error
	}
	done := make(chan polled, 1)
	go func() {
		jobs, err := c.poll(t.Context(), pollWait)
		done <- polled{jobs, err}
	}()
	select {
	case <-a.polls:
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not reach the first replica")
	}
	a.kill()
	select {
	case <-b.polls:
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not move to the second replica")
	}
	want := h.fc.sign(job("ep-1", "job-1", 1, "openssl@3.0.15-1"))
	h.fc.jobs <- want
	var got polled
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the poll held by the second replica did not return the job")
	}
	if got.err != nil || len(got.jobs) != 1 || !bytes.Equal(got.jobs[0].Payload, want.Payload) {
		t.Errorf("poll = %v, %v; want the job from the second replica", got.jobs, got.err)
	}
}

// TestAgentRunsThroughTheReplicaThatWorks: an agent given a dead
// replica's URL first enrolls, reports, polls and delivers its result
// through the second.
func TestAgentRunsThroughTheReplicaThatWorks(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.Controller = closedURL(t) + ", " + h.fc.srv.URL
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.fc.jobs <- h.fc.sign(job("ep-1", "job-1", 1, "openssl@3.0.15-1"))
	runAgent(t, a, h.fc, func() bool {
		_, _, _, results := h.fc.snapshot()
		_, done := results["job-1"]
		return done
	})
	if n := h.be.installCount("openssl@3.0.15-1"); n != 1 {
		t.Errorf("installed %d times, want once", n)
	}
	if moves := strings.Count(h.logs.String(), "moving to the next controller URL"); moves != 1 {
		t.Errorf("logged %d moves, want 1 (then every call stays on the working URL):\n%s", moves, h.logs.String())
	}
}

func TestControllerURLs(t *testing.T) {
	tests := []struct {
		raw     string
		want    []string
		wantErr string
	}{
		{raw: "https://a.msp.example:8420", want: []string{"https://a.msp.example:8420"}},
		{raw: "https://a.msp.example:8420/, https://b.msp.example:8420", want: []string{"https://a.msp.example:8420", "https://b.msp.example:8420"}},
		{raw: "https://a.msp.example,,https://b.msp.example", wantErr: "an empty URL"},
		{raw: "https://a.msp.example,", wantErr: "an empty URL"},
		{raw: "https://a.msp.example,https://a.msp.example/", wantErr: "given twice"},
		{raw: "https://a.msp.example,http://b.msp.example", wantErr: "plain http is allowed only"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := controllerURLs(tt.raw, false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("controllerURLs(%q) = %v, %v; want error containing %q", tt.raw, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("controllerURLs(%q) = %v, %v; want %v", tt.raw, got, err, tt.want)
			}
		})
	}
}

// TestRetryAfterIsTheWordOfTheReplicaLeftBehind: a 503's Retry-After
// holds the next attempt when it goes to the same URL, not when it goes
// to another replica.
func TestRetryAfterIsTheWordOfTheReplicaLeftBehind(t *testing.T) {
	const lo, hi = time.Millisecond, 10 * time.Millisecond
	tests := []struct {
		name     string
		urls     string
		moved    bool
		min, max time.Duration
	}{
		{name: "one URL: the wait honours Retry-After", urls: "http://127.0.0.1:1", min: 30 * time.Second, max: 33 * time.Second},
		{name: "the next attempt stays on the same replica", urls: "http://127.0.0.1:1,http://127.0.0.1:2", min: 30 * time.Second, max: 33 * time.Second},
		{name: "the next attempt goes to another replica", urls: "http://127.0.0.1:1,http://127.0.0.1:2", moved: true, min: lo, max: 2 * lo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newClient(tt.urls, false, nil, netip.Addr{}, retryPolicy{max: 2, waitMin: lo, waitMax: hi}, newHarness(t).config().Logger)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequestWithContext(context.WithValue(t.Context(), attemptKey{}, &attemptState{replica: 0}), http.MethodGet, "/v1/jobs", nil)
			resp := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"30"}}, Request: req}
			if tt.moved {
				c.moveOn(0, resp, nil)
			}
			if d := c.backoff(lo, hi, 0, resp); d < tt.min || d > tt.max {
				t.Errorf("wait %v, want within [%v, %v]", d, tt.min, tt.max)
			}
		})
	}
}
