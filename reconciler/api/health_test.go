package api

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// TestProbes: /healthz and /readyz answer without credentials; /readyz
// says why it is not ready, and a server without a Ready function is
// always ready.
func TestProbes(t *testing.T) {
	notReady := errors.New("the store's last write failed (report, at 2026-11-30T09:00:00Z)")
	tests := []struct {
		name       string
		ready      func() error
		path       string
		wantStatus int
		wantBody   string
	}{
		{"alive", nil, PathHealthz, http.StatusOK, "ok\n"},
		{"alive while not ready", func() error { return notReady }, PathHealthz, http.StatusOK, "ok\n"},
		{"ready without a ready function", nil, PathReadyz, http.StatusOK, "ok\n"},
		{"ready", func() error { return nil }, PathReadyz, http.StatusOK, "ok\n"},
		{"not ready, with the reason", func() error { return notReady }, PathReadyz, http.StatusServiceUnavailable, "not ready: " + notReady.Error() + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Ready = tt.ready })
			r := e.request(context.Background(), http.MethodGet, tt.path, nil)
			if r.status != tt.wantStatus || string(r.body) != tt.wantBody {
				t.Errorf("GET %s: %d %q, want %d %q", tt.path, r.status, r.body, tt.wantStatus, tt.wantBody)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}
