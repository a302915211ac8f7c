package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// TestSourceAddr: with SourceAddr set, calls to the controller leave from
// that address; without it, from whatever the system picks.
func TestSourceAddr(t *testing.T) {
	var mu sync.Mutex
	var from []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		from = append(from, host)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"updates": 0}`)
	}))
	defer srv.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		source netip.Addr
		want   string
	}{
		{netip.MustParseAddr("127.0.0.7"), "127.0.0.7"},
		{netip.Addr{}, "127.0.0.1"},
	} {
		c, err := newClient(srv.URL, false, nil, tt.source, retryPolicy{max: 0, waitMin: time.Millisecond, waitMax: time.Millisecond}, log)
		if err != nil {
			t.Fatal(err)
		}
		c.endpoint, c.nodeKey = "acme-ws-01", "node-key"
		if _, err := c.report(context.Background(), protocol.Report{Seq: 1}); err != nil {
			t.Fatalf("source %v: %v", tt.source, err)
		}
		mu.Lock()
		got := from[len(from)-1]
		mu.Unlock()
		if got != tt.want {
			t.Errorf("source %v: the controller saw the call from %s, want %s", tt.source, got, tt.want)
		}
	}
}
