package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// slowConn is how a slow client talks to the webhook.
type slowConn int

const (
	// headersOnly sends part of its headers and stalls.
	headersOnly slowConn = iota
	// bulkThenStall sends signed headers and most of an 8 MiB body at
	// once (chunked, so no Content-Length gives it away), then stalls:
	// what a server reading the body before the signature holds whole.
	bulkThenStall
	// trickle sends signed headers and its body a byte at a time.
	trickle
	// unsignedTrickle sends headers without a signature and its body a
	// byte at a time.
	unsignedTrickle
)

// bulkBytes is how much of its body a bulkThenStall connection sends: just
// under the 8 MiB every body was once allowed.
const bulkBytes = protocol.MaxBodyBytes - 512<<10

// TestSlowWebhooksHoldLittleMemory: 40 slow webhook connections, each from
// its own address, keep the server's live heap growth bounded, where
// reading a body before checking its signature held ~8 MiB for each, and
// the server cuts every one of them off.
func TestSlowWebhooksHoldLittleMemory(t *testing.T) {
	e := newEnv(t)
	// Changed before any request: the server's goroutines read it.
	e.api.limits.readHeader = time.Second
	e.api.limits.unauthenticatedBody = time.Second
	srv := e.serve()

	kinds := make([]slowConn, 40)
	for i := range kinds {
		kinds[i] = []slowConn{headersOnly, bulkThenStall, bulkThenStall, trickle, unsignedTrickle}[i%5]
	}
	before := liveHeap()
	var sent, closed sync.WaitGroup
	cutAfter := make([]time.Duration, len(kinds))
	for i, kind := range kinds {
		conn := dialFrom(t, fmt.Sprintf("127.0.0.%d", 10+i), srv)
		start := time.Now()
		closed.Go(func() {
			// The server closes the connection, with or without an
			// answer first.
			_, _ = io.Copy(io.Discard, conn)
			cutAfter[i] = time.Since(start)
		})
		sent.Go(func() { sendSlowly(conn, kind) })
	}
	sent.Wait()
	growth := liveHeap() - before
	t.Logf("live heap growth with %d slow webhook connections: %.1f MiB", len(kinds), float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Errorf("live heap grew by %.1f MiB, want under 64 MiB", float64(growth)/(1<<20))
	}

	done := make(chan struct{})
	go func() { closed.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		for i, d := range cutAfter {
			t.Logf("conn %d kind %d: %v", i, kinds[i], d)
		}
		t.Fatal("slow connections still open after 30 s")
	}
	for i, d := range cutAfter {
		if d > 10*time.Second {
			t.Errorf("connection %d (kind %d) cut off after %v, want within the 1 s timeouts and some slack", i, kinds[i], d)
		}
	}
}

// dialFrom opens a TCP connection to srv from the loopback address ip; it
// is closed when the test ends.
func dialFrom(t *testing.T, ip string, srv *httptest.Server) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sendSlowly writes a webhook to conn as kind does, until its stall or
// until the server closes the connection. It returns once the stall has
// begun, leaving the connection open.
func sendSlowly(conn net.Conn, kind slowConn) {
	const sig = "X-Hub-Signature-256: sha256=" + "00000000000000000000000000000000" + "00000000000000000000000000000000" + "\r\n"
	switch kind {
	case headersOnly:
		_, _ = io.WriteString(conn, "POST /v1/hooks/git HTTP/1.1\r\nHost: patchd\r\n"+sig)
	case bulkThenStall:
		if _, err := io.WriteString(conn, "POST /v1/hooks/git HTTP/1.1\r\nHost: patchd\r\nTransfer-Encoding: chunked\r\n"+sig+"\r\n"); err != nil {
			return
		}
		chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", 64<<10, bytes.Repeat([]byte("x"), 64<<10))
		for n := 0; n < bulkBytes; n += 64 << 10 {
			if _, err := conn.Write(chunk); err != nil {
				return // cut off
			}
		}
	case trickle, unsignedTrickle:
		head := "POST /v1/hooks/git HTTP/1.1\r\nHost: patchd\r\nContent-Length: 1000\r\n"
		if kind == trickle {
			head += sig
		}
		if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
			return
		}
		// Long enough for a server to have read every bulk body.
		for range 20 {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// holdEnrollment opens an enrollment from ip that sends its headers and
// part of its body, then stalls, holding its place among the requests
// without credentials until the test ends.
func holdEnrollment(t *testing.T, e *env, ip string) {
	t.Helper()
	conn := dialFrom(t, ip, e.srv)
	if _, err := io.WriteString(conn, "POST "+protocol.PathEnroll+" HTTP/1.1\r\nHost: patchd\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
}

// waitAdmitted waits until n requests without credentials hold a place.
func waitAdmitted(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.api.admission.mu.Lock()
		got := e.api.admission.total
		e.api.admission.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests admitted, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnauthenticatedRequestsAreCapped: requests still sending their body
// before proving who they are hold places; one address cannot take more
// than its share, and when every place is taken the answer is 503.
func TestUnauthenticatedRequestsAreCapped(t *testing.T) {
	tests := []struct {
		name           string
		max, perAddr   int
		held           []string // addresses of the stalled enrollments
		from           string
		wantStatus     int
		wantRetryAfter bool
	}{
		{name: "one address at its share", max: 10, perAddr: 2, held: []string{"127.0.0.2", "127.0.0.2"}, from: "127.0.0.2", wantStatus: 429, wantRetryAfter: true},
		{name: "another address still served", max: 10, perAddr: 2, held: []string{"127.0.0.2", "127.0.0.2"}, from: "127.0.0.3", wantStatus: 200},
		{name: "every place taken", max: 2, perAddr: 2, held: []string{"127.0.0.2", "127.0.0.3"}, from: "127.0.0.4", wantStatus: 503, wantRetryAfter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.api.admission = newAdmission(tt.max, tt.perAddr)
			e.srv = e.serve()
			for _, ip := range tt.held {
				holdEnrollment(t, e, ip)
			}
			waitAdmitted(t, e, len(tt.held))
			resp := e.postFrom(e.clientFrom(tt.from), e.srv, protocol.PathEnroll, enrollRequest("acme", acmeSecret, "ws-001"))
			if resp.status != tt.wantStatus {
				t.Fatalf("enrollment from %s: %d %s, want %d", tt.from, resp.status, resp.body, tt.wantStatus)
			}
			if got := resp.header.Get("Retry-After") != ""; got != tt.wantRetryAfter {
				t.Errorf("Retry-After %q", resp.header.Get("Retry-After"))
			}
		})
	}
}

// TestDeadlines: with a request deadline of half a second, a long-poll
// still answers after its longer wait (it moves its deadlines by design),
// while a report trickled past the deadline is cut off.
func TestDeadlines(t *testing.T) {
	e := newEnv(t)
	// Changed before any request: the server's goroutines read it.
	e.api.limits.request = 500 * time.Millisecond
	e.srv = e.serve()
	a := e.enroll("WS-001")

	// A long-poll answers after its wait.
	start := time.Now()
	jobs, resp := e.poll(context.Background(), a, "1500ms")
	if resp.status != 200 || len(jobs) != 0 {
		t.Fatalf("long-poll: %d %s", resp.status, resp.body)
	}
	if waited := time.Since(start); waited < 1500*time.Millisecond {
		t.Errorf("the long-poll answered after %v, before its wait", waited)
	}

	// A backup is sent.
	if resp := e.admin("/v1/backup"); resp.status != 200 {
		t.Fatalf("backup: %d %s", resp.status, resp.body)
	}

	// A report trickled past the deadline is cut off.
	conn := dialFrom(t, "127.0.0.2", e.srv)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: patchd\r\nAuthorization: Bearer %s\r\n%s: %s\r\nContent-Length: 1000\r\n\r\n",
		protocol.PathReport, a.nodeKey, protocol.HeaderEndpoint, a.endpoint)
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for range 100 {
		if _, err := conn.Write([]byte(" ")); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = io.Copy(io.Discard, conn)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("the trickled report was cut off after %v, want about the 500 ms deadline", took)
	}
}

func TestSizeAllowance(t *testing.T) {
	tests := []struct {
		name string
		size int64
		want time.Duration
	}{
		{"nothing", 0, 0},
		{"one second's worth", minAnswerRate, time.Second},
		{"a 1 GiB backup", 1 << 30, 8192 * time.Second},
	}
	for _, tt := range tests {
		if got := sizeAllowance(tt.size); got != tt.want {
			t.Errorf("%s: sizeAllowance(%d) = %v, want %v", tt.name, tt.size, got, tt.want)
		}
	}
}

func TestSourceAddr(t *testing.T) {
	tests := []struct {
		name, remote, forwarded, want string
	}{
		{"IPv4", "192.0.2.7:50000", "", "192.0.2.7"},
		{"IPv4 mapped into IPv6", "[::ffff:192.0.2.7]:50000", "", "192.0.2.7"},
		{"IPv6 counted by its /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:50000", "", "2001:db8:1:2::"},
		{"X-Forwarded-For is not trusted", "192.0.2.7:50000", "198.51.100.1", "192.0.2.7"},
		{"not an IP", "@unix", "", "invalid IP"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/v1/enroll", nil)
		r.RemoteAddr = tt.remote
		if tt.forwarded != "" {
			r.Header.Set("X-Forwarded-For", tt.forwarded)
		}
		if got := sourceAddr(r).String(); got != tt.want {
			t.Errorf("%s: sourceAddr(%s) = %s, want %s", tt.name, tt.remote, got, tt.want)
		}
	}
}
