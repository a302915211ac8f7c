package api

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchline/patchline/internal/releasekey"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/agentrelease"
)

func TestReleaseFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "1.4.2")
	bin := protocol.ReleaseBinary("linux", "amd64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bin), []byte("agent binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	if _, err := releasekey.Sign(key, dir); err != nil {
		t.Fatal(err)
	}
	rel, err := agentrelease.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })
	e := newEnv(t, func(c *Config) { c.Releases = rel })
	a := e.enroll("WS-001")
	none := newEnv(t)
	b := none.enroll("WS-001")

	for _, tc := range []struct {
		name   string
		env    *env
		path   string
		auth   []string
		status int
		body   string
	}{
		{"an enrolled agent downloads a binary", e, protocol.ReleaseRoute("1.4.2", bin), a.auth(), 200, "agent binary"},
		{"and the manifest", e, protocol.ReleaseRoute("1.4.2", protocol.ReleaseManifest), a.auth(), 200, ""},
		{"without a node key", e, protocol.ReleaseRoute("1.4.2", bin), nil, 401, ""},
		{"a file no manifest lists", e, protocol.ReleaseRoute("1.4.2", "notes.txt"), a.auth(), 404, ""},
		{"a version with no release", e, protocol.ReleaseRoute("1.4.3", bin), a.auth(), 404, ""},
		{"a path out of the directory", e, protocol.ReleasesPath + "..%2F..%2Fetc/passwd", a.auth(), 404, ""},
		{"a controller without releases", none, protocol.ReleaseRoute("1.4.2", bin), b.auth(), 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.env.request(context.Background(), http.MethodGet, tc.path, nil, tc.auth...)
			if resp.status != tc.status {
				t.Fatalf("GET %s: %d %s, want %d", tc.path, resp.status, resp.body, tc.status)
			}
			if tc.body != "" && string(resp.body) != tc.body {
				t.Errorf("body %q, want %q", resp.body, tc.body)
			}
		})
	}
}
