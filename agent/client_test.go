package agent

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

// enrolledClient is an enrolled agent's API client with backoff waits
// recorded and shortened, so retry tests do not wait.
func enrolledClient(t *testing.T, h *harness) (*client, func() []time.Duration) {
	t.Helper()
	c := h.enrolled(t).api
	var mu sync.Mutex
	var waits []time.Duration
	c.http.Backoff = func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, jitterBackoff(min, max, attempt, resp))
		return time.Millisecond
	}
	return c, func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
}

func TestRetries(t *testing.T) {
	report := "POST " + protocol.PathReport
	tests := []struct {
		name       string
		statuses   []int
		retryAfter string
		wantErr    protocol.Code
		wantTries  int
		// wantMinWait is a floor for every recorded backoff wait.
		wantMinWait time.Duration
	}{
		{name: "controller unavailable twice, then fine", statuses: []int{503, 503}, wantTries: 3},
		{name: "internal error is retried", statuses: []int{500}, wantTries: 2},
		{name: "bad request is final", statuses: []int{400}, wantErr: protocol.CodeInvalid, wantTries: 1},
		{name: "unknown node key is final", statuses: []int{401}, wantErr: protocol.CodeUnauthorized, wantTries: 1},
		{name: "conflict is final", statuses: []int{409}, wantErr: protocol.CodeConflict, wantTries: 1},
		{
			name: "rate limited waits as long as Retry-After says", statuses: []int{429}, retryAfter: "2",
			wantTries: 2, wantMinWait: 2 * time.Second,
		},
		{
			name: "retries are bounded", statuses: []int{503, 503, 503, 503, 503},
			wantErr: protocol.CodeUnavailable, wantTries: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c, waits := enrolledClient(t, h)
			h.fc.failNext(report, tt.statuses...)
			h.fc.retryAfter = tt.retryAfter
			_, err := c.report(t.Context(), protocol.Report{Hostname: "acme-ws-01"})
			if got := errorCode(err); got != tt.wantErr {
				t.Fatalf("report error = %v (code %q), want code %q", err, got, tt.wantErr)
			}
			requests, _, _, _ := h.fc.snapshot()
			tries := 0
			for _, r := range requests {
				if r == report {
					tries++
				}
			}
			if tries != tt.wantTries {
				t.Errorf("controller saw %d attempts, want %d", tries, tt.wantTries)
			}
			for _, w := range waits() {
				if w < tt.wantMinWait {
					t.Errorf("waited %v before a retry, want at least %v", w, tt.wantMinWait)
				}
			}
		})
	}
}

func TestRetriesAreLoggedThroughSlog(t *testing.T) {
	h := newHarness(t)
	c, _ := enrolledClient(t, h)
	h.fc.failNext("POST "+protocol.PathReport, 503)
	if _, err := c.report(t.Context(), protocol.Report{}); err != nil {
		t.Fatal(err)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `msg="retrying request"`) {
		t.Errorf("retry not in the agent's log:\n%s", logs)
	}
}

// TestLibraryLogLinesUseTheErrKey: the retry library's log lines carry
// their error under "err", as the agent's own lines do, and the library's
// arguments are left as they were.
func TestLibraryLogLinesUseTheErrKey(t *testing.T) {
	var buf bytes.Buffer
	l := slogLeveled{slog.New(slog.NewTextHandler(&buf, nil))}
	kv := []any{"error", errors.New("dial tcp 10.0.0.5:8420: connection refused"), "method", "POST"}
	l.Error("request failed", kv...)
	l.Warn("no error here", "method", "GET")
	got := buf.String()
	if !strings.Contains(got, `err="dial tcp 10.0.0.5:8420: connection refused" method=POST`) || strings.Contains(got, "error=") {
		t.Errorf("log:\n%s\nwant the error under err", got)
	}
	if !strings.Contains(got, `msg="no error here" method=GET`) {
		t.Errorf("log:\n%s\nwant the line without an error as it was", got)
	}
	if kv[0] != "error" {
		t.Errorf("the caller's list changed: %v", kv)
	}
}

func TestBackoffIsJitteredAndBounded(t *testing.T) {
	const min, max = 100 * time.Millisecond, 10 * time.Second
	tests := []struct {
		name    string
		attempt int
		lo, hi  time.Duration
	}{
		{name: "first retry is already spread over min to 2×min", attempt: 0, lo: min, hi: 2 * min},
		{name: "fourth retry spreads up to 16×min", attempt: 3, lo: min, hi: 16 * min},
		{name: "late retry is capped at the maximum", attempt: 20, lo: min, hi: max},
		{name: "absurd attempt number does not overflow", attempt: 200, lo: min, hi: max},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := jitterBackoff(min, max, tt.attempt, nil)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("backoff = %v, want within [%v, %v]", d, tt.lo, tt.hi)
				}
				seen[d] = true
			}
			if tt.hi > tt.lo && len(seen) < 100 {
				t.Errorf("200 backoffs gave only %d distinct waits; agents would retry in step", len(seen))
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		want   time.Duration
		ok     bool
	}{
		{name: "seconds", header: "7", want: 7 * time.Second, ok: true},
		{name: "HTTP date", header: "Tue, 10 Mar 2026 22:01:30 GMT", want: 90 * time.Second, ok: true},
		{name: "date in the past", header: "Tue, 10 Mar 2026 21:00:00 GMT", want: 0, ok: true},
		{name: "a day is capped", header: "86400", want: maxRetryAfter, ok: true},
		{name: "negative is ignored", header: "-5"},
		{name: "garbage is ignored", header: "soon"},
		{name: "absent", header: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := retryAfter(tt.header, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
	resp := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"30"}}}
	if d := jitterBackoff(time.Second, time.Minute, 0, resp); d < 30*time.Second || d > 33*time.Second {
		t.Errorf("backoff on 503 with Retry-After: 30 = %v, want 30s plus at most 10%%", d)
	}
}

func TestControllerURL(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		wantErr  string
	}{
		{url: "https://patchd.msp.example:8443"},
		{url: "https://patchd.msp.example/base/"},
		{url: "http://127.0.0.1:8080"},
		{url: "http://[::1]:8080"},
		{url: "http://localhost:8080"},
		{url: "http://patchd.msp.example", wantErr: "plain http is allowed only"},
		{url: "http://patchd.msp.example", insecure: true},
		{url: "ftp://patchd.msp.example", wantErr: "scheme must be https"},
		{url: "https://", wantErr: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := controllerURL(tt.url, tt.insecure)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("controllerURL(%q, insecure=%v) = %v, want error containing %q", tt.url, tt.insecure, err, tt.wantErr)
			}
		})
	}
}

func TestTLSWithPinnedCA(t *testing.T) {
	fc := newFakeController(t)
	tlsSrv := httptest.NewUnstartedServer(fc.srv.Config.Handler)
	// The refused handshake is the point of one case, not log noise.
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())

	tests := []struct {
		name    string
		roots   *x509.CertPool
		wantErr bool
	}{
		{name: "controller certificate from the CA file", roots: pool},
		{name: "unknown certificate authority is refused without retrying", roots: x509.NewCertPool(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.fc = fc
			cfg := h.config()
			cfg.Controller, cfg.RootCAs = tlsSrv.URL, tt.roots
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = a.enroll(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("enroll over TLS = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	requests, _, _, _ := fc.snapshot()
	if diff := cmp.Diff([]string{"POST " + protocol.PathEnroll}, requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestRefusedWritesAreLoggedAtWarn: a write the controller answers with a
// 5xx (its store failing, say) is logged at WARN on every answer, with the
// retries it had and has left; a refused read or a 4xx is not.
func TestRefusedWritesAreLoggedAtWarn(t *testing.T) {
	tests := []struct {
		name     string
		route    string
		statuses []int
		call     func(t *testing.T, c *client) error
		want     []string
	}{
		{
			name: "a report refused twice, then taken", route: "POST " + protocol.PathReport, statuses: []int{500, 503},
			call: func(t *testing.T, c *client) error { _, err := c.report(t.Context(), protocol.Report{}); return err },
			want: []string{
				`level=WARN msg="controller refused a write; retrying" method=POST path=/v1/report status=500 retry=0 retries_left=2`,
				`level=WARN msg="controller refused a write; retrying" method=POST path=/v1/report status=503 retry=1 retries_left=1`,
			},
		},
		{
			name: "a report refused until the retries run out", route: "POST " + protocol.PathReport, statuses: []int{503, 503, 503},
			call: func(t *testing.T, c *client) error { _, _ = c.report(t.Context(), protocol.Report{}); return nil },
			want: []string{
				`retry=0 retries_left=2`,
				`retry=1 retries_left=1`,
				`level=WARN msg="controller refused a write; no retries left" method=POST path=/v1/report status=503 retry=2 retries_left=0`,
			},
		},
		{
			name: "a poll refused is a read", route: "GET " + protocol.PathJobs, statuses: []int{503, 503, 503},
			call: func(t *testing.T, c *client) error { _, _ = c.poll(t.Context(), 0); return nil },
		},
		{
			name: "a report the controller calls invalid is final, not a refusal", route: "POST " + protocol.PathReport, statuses: []int{400},
			call: func(t *testing.T, c *client) error { _, _ = c.report(t.Context(), protocol.Report{}); return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c, _ := enrolledClient(t, h)
			h.fc.failNext(tt.route, tt.statuses...)
			if err := tt.call(t, c); err != nil {
				t.Fatal(err)
			}
			var warns []string
			for _, line := range strings.Split(h.logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") {
					warns = append(warns, line)
				}
			}
			if len(warns) != len(tt.want) {
				t.Fatalf("%d WARN lines, want %d:\n%s", len(warns), len(tt.want), strings.Join(warns, "\n"))
			}
			for i, w := range tt.want {
				if !strings.Contains(warns[i], w) {
					t.Errorf("WARN line %d:\n%s\nwant it to hold %s", i, warns[i], w)
				}
			}
		})
	}
}
