package api

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
)

// logBuffer is a log destination safe for the server's goroutines.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newLoggedEnv is an env whose log goes to the returned buffer.
func newLoggedEnv(t *testing.T) (*env, *logBuffer) {
	t.Helper()
	var logs logBuffer
	e := newEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	return e, &logs
}

// TestRefusalsAreLoggedAndCounted: a failed enrollment or admin token
// check is logged with the source address (and the client, when it is
// one of ours), never with the secret or token, and counted.
func TestRefusalsAreLoggedAndCounted(t *testing.T) {
	const guess = "guessed-credential-0123456789"
	tests := []struct {
		name      string
		send      func(e *env) response
		wantCode  int
		wantLog   []string
		notLogged []string
		wantEnrol map[string]float64
		wantAdmin float64
	}{
		{
			name: "wrong admin token",
			send: func(e *env) response {
				return e.request(context.Background(), http.MethodGet, "/v1/status", nil, "Authorization", "Bearer "+guess)
			},
			wantCode:  401,
			wantLog:   []string{`msg="admin token refused"`, "reason=wrong", `route="GET /v1/status"`, "addr=127.0.0.1"},
			notLogged: []string{guess},
			wantAdmin: 1,
		},
		{
			name:      "no admin token",
			send:      func(e *env) response { return e.request(context.Background(), http.MethodGet, "/v1/backup", nil) },
			wantCode:  401,
			wantLog:   []string{`msg="admin token refused"`, "reason=missing", `route="GET /v1/backup"`},
			wantAdmin: 1,
		},
		{
			name:      "wrong enrollment secret",
			send:      func(e *env) response { return e.post(protocol.PathEnroll, enrollRequest("acme", guess, "ws-1")) },
			wantCode:  401,
			wantLog:   []string{`msg="enrollment refused"`, "reason=bad_secret", "addr=127.0.0.1", "client=acme"},
			notLogged: []string{guess},
			wantEnrol: map[string]float64{reasonBadSecret: 1},
		},
		{
			name:      "unknown client, not named in the log",
			send:      func(e *env) response { return e.post(protocol.PathEnroll, enrollRequest("initech", guess, "ws-1")) },
			wantCode:  401,
			wantLog:   []string{"reason=unknown_client", "addr=127.0.0.1"},
			notLogged: []string{guess, "initech"},
			wantEnrol: map[string]float64{reasonUnknownClient: 1},
		},
		{
			name:      "malformed enrollment",
			send:      func(e *env) response { return e.post(protocol.PathEnroll, `{"client": "acme", "secret": "`+guess) },
			wantCode:  400,
			wantLog:   []string{"reason=malformed", "addr=127.0.0.1"},
			notLogged: []string{guess},
			wantEnrol: map[string]float64{reasonMalformed: 1},
		},
		{
			name:      "enrollment body over its limit",
			send:      func(e *env) response { return e.post(protocol.PathEnroll, strings.Repeat(" ", maxEnrollBody+1)) },
			wantCode:  413,
			wantLog:   []string{"reason=malformed"},
			wantEnrol: map[string]float64{reasonMalformed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, logs := newLoggedEnv(t)
			if resp := tt.send(e); resp.status != tt.wantCode {
				t.Fatalf("answer %d %s, want %d", resp.status, resp.body, tt.wantCode)
			}
			got := logs.String()
			for _, want := range tt.wantLog {
				if !strings.Contains(got, want) {
					t.Errorf("log lacks %s:\n%s", want, got)
				}
			}
			for _, secret := range tt.notLogged {
				if strings.Contains(got, secret) {
					t.Errorf("log holds %q:\n%s", secret, got)
				}
			}
			wantEnrol := tt.wantEnrol
			if wantEnrol == nil {
				wantEnrol = map[string]float64{}
			}
			if diff := cmp.Diff(wantEnrol, e.enrollFailures()); diff != "" {
				t.Errorf("enrollment failures (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(e.api.refusals.admin); got != tt.wantAdmin {
				t.Errorf("admin auth failures %v, want %v", got, tt.wantAdmin)
			}
		})
	}
}

// TestRefusalLogIsRationed: a flood of refusals logs a burst of lines,
// then a line a second saying how many went unlogged, while the counter
// counts them all.
func TestRefusalLogIsRationed(t *testing.T) {
	e, logs := newLoggedEnv(t)
	const n = 100
	for range n {
		e.request(context.Background(), http.MethodGet, "/v1/status", nil, "Authorization", "Bearer wrong")
	}
	if got := strings.Count(logs.String(), "admin token refused"); got != refusalLogBurst {
		t.Errorf("%d refusals logged %d lines, want the burst of %d", n, got, refusalLogBurst)
	}
	e.clock.Advance(time.Second)
	e.request(context.Background(), http.MethodGet, "/v1/status", nil, "Authorization", "Bearer wrong")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "unlogged_before=80") {
		t.Errorf("the line after a second: %s; want unlogged_before=80", last)
	}
	if got := testutil.ToFloat64(e.api.refusals.admin); got != n+1 {
		t.Errorf("admin auth failures %v, want %d", got, n+1)
	}
}
