package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFleetGenerateAndSimFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "gen")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"fleet", "generate", "--clients", "2", "--endpoints", "10", "--updates", "3", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("fleet generate exited %d: %s", code, stderr.String())
	}
	for _, f := range []string{"fleet/.git", "fleet/clients/client-001/client.cue", "state.json", "secrets.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("fleet generate did not write %s: %v", f, err)
		}
	}
	secrets := filepath.Join(out, "secrets.json")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the same output directory twice", []string{"fleet", "generate", "--out", out}, "already exists"},
		{"no output directory", []string{"fleet", "generate"}, "--out is required"},
		{"sim without secrets", []string{"sim", "--endpoints", "2"}, "--secrets is required"},
		{"sim with more clients than the secrets name", []string{"sim", "--secrets", secrets, "--clients", "3"}, `no enrollment secret for client "client-002"`},
		{"sim over plain http to another host", []string{"sim", "--secrets", secrets, "--clients", "2", "--controller", "http://patchd.msp.example:8420"},
			"plain http would send the admin token and enrollment secrets in clear"},
		{"sim measuring commits without the repo", []string{"sim", "--secrets", secrets, "--clients", "2", "--commits", "1"}, "needs the fleet repo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main(tc.args, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tc.want)
			}
		})
	}
}
