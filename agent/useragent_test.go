package agent

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/protocol"
)

// TestUserAgent: every request names the agent and its version, the
// same version the reports carry.
func TestUserAgent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.UserAgent()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(protocol.ReportResponse{})
	}))
	defer srv.Close()
	c, err := newClient(srv.URL, false, nil, netip.Addr{}, retryPolicy{max: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.report(t.Context(), protocol.Report{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if ua, want := <-got, "patch-agent/"+buildinfo.Version(); ua != want {
		t.Errorf("User-Agent %q, want %q", ua, want)
	}
}
