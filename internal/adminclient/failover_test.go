package adminclient_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

// replica is one URL of a controller with several replicas, as a test
// arranges it in front of one real patchd: the patchd itself, or what a
// dead or refusing replica looks like from the client.
type replica struct {
	URL      string
	requests atomic.Int64
}

// newReplica serves h on loopback, counting the requests it gets.
func newReplica(t *testing.T, h http.Handler) *replica {
	t.Helper()
	r := &replica{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// closedURL is the URL of a loopback port nothing listens on: a replica
// that is down.
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

// status answers every request with code, as a load balancer in front
// of a dead replica (502, 503, 504) or a replica that refuses the token
// (401).
func status(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, http.StatusText(code), code)
	})
}

// dies reads the request and closes the connection without answering:
// a replica killed while it handles the request.
func dies(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	})
}

// TestFailover: reads move to the next replica whenever one cannot be
// reached, writes only when the connection was never made, and an answer
// of a working replica ends the call; the next call starts at the
// replica the last one reached.
func TestFailover(t *testing.T) {
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("../../reconciler/testdata/fleet")
	up.Commit("Start the fleet")
	pd := patchdtest.Start(t, patchdtest.Config(t, up.Work, map[string]string{"acme": "acme-enrollment-secret-0123456789"}))
	target, err := url.Parse(pd.URL)
	if err != nil {
		t.Fatal(err)
	}
	admin := &adminclient.Client{Base: pd.URL, Token: patchdtest.AdminToken}
	ctx := context.Background()

	tests := []struct {
		name string
		// first is the first URL: down, or what it answers.
		first http.Handler
		down  bool
		// write creates a token named after the case instead of reading
		// the status, twice.
		write bool
		// wantErr is in the error of the first call ("" for none).
		wantErr string
		// wantFirst and wantLive are the requests the first URL and the
		// live replica got over two calls.
		wantFirst, wantLive int64
		wantToken           bool
	}{
		{name: "a read: first replica down", down: true, wantLive: 2},
		{name: "a read: a proxy answers 503 for the first", first: status(503), wantFirst: 1, wantLive: 2},
		{name: "a read: a proxy answers 504 for the first", first: status(504), wantFirst: 1, wantLive: 2},
		{name: "a read: the first replica dies with the request", first: dies(t), wantFirst: 1, wantLive: 2},
		{name: "a read: a 401 from the first is the controller's answer", first: status(401), wantErr: "401", wantFirst: 2},
		{name: "a token: first replica down, the token is made by the next", down: true, write: true, wantLive: 1, wantToken: true},
		{
			name: "a token: a proxy's 503 may hide a replica that made it: not sent again", first: status(503), write: true,
			wantErr: "503", wantFirst: 1,
		},
		{
			name: "a token: the first replica dies after receiving it: not sent again", first: dies(t), write: true,
			wantErr: "may have received the request", wantFirst: 1,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := newReplica(t, httputil.NewSingleHostReverseProxy(target))
			var first *replica
			firstURL := closedURL(t)
			if !tt.down {
				first = newReplica(t, tt.first)
				firstURL = first.URL
			}
			c := &adminclient.Client{Base: firstURL + ", " + live.URL, Token: patchdtest.AdminToken}
			name := "failover-" + string(rune('a'+i))
			call := func() error {
				if tt.write {
					_, err := c.CreateToken(ctx, protocol.TokenRequest{Name: name, Scopes: []protocol.Scope{protocol.ScopeRead}})
					return err
				}
				_, err := c.Status(ctx)
				return err
			}
			err := call()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("first call: %v, want error containing %q", err, tt.wantErr)
			}
			if !tt.write {
				_ = call()
			}
			if first != nil && first.requests.Load() != tt.wantFirst {
				t.Errorf("first URL got %d requests, want %d", first.requests.Load(), tt.wantFirst)
			}
			if live.requests.Load() != tt.wantLive {
				t.Errorf("live replica got %d requests, want %d", live.requests.Load(), tt.wantLive)
			}
			if tt.write {
				tokens, err := admin.Tokens(ctx)
				if err != nil {
					t.Fatal(err)
				}
				made := 0
				for _, tok := range tokens {
					if tok.Name == name {
						made++
					}
				}
				if made != map[bool]int{true: 1}[tt.wantToken] {
					t.Errorf("the controller holds %d tokens %s, want it made %v", made, name, tt.wantToken)
				}
			}
		})
	}
}

// TestEveryReplicaDown: a call that reaches no replica says what each
// one did.
func TestEveryReplicaDown(t *testing.T) {
	lb := newReplica(t, status(502))
	a, b := closedURL(t), lb.URL
	c := &adminclient.Client{Base: a + "," + b, Token: "t"}
	_, err := c.Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(a, "http://")) || !strings.Contains(err.Error(), "502") {
		t.Errorf("status with every replica down: %v; want both replicas' failures", err)
	}
	bad := &adminclient.Client{Base: "https://patchd-a.msp.example,http://patchd-b.msp.example", Token: "t"}
	if _, err := bad.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "in clear") {
		t.Errorf("a list with a plain http URL: %v, want it refused before anything is sent", err)
	}
}
