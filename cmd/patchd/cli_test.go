package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/buildinfo"
)

// TestCLI: patchd's command line as a user meets it: help on stdout,
// usage mistakes exit 2 at once, the version.
func TestCLI(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout []string
		wantStderr []string
	}{
		{name: "--help is cobra's, on stdout", args: []string{"--help"}, wantStdout: []string{"Usage:", "patchd [command]", "serve", "restore", "version", "PATCHLINE_DATA_DIR"}},
		{name: "serve --help lists its flags", args: []string{"serve", "--help"}, wantStdout: []string{"patchd serve [flags]", "--repo-dir DIR", "--config file", "--eval-memory amount"}},
		{name: "version", args: []string{"version"}, wantStdout: []string{buildinfo.Line("patchd") + "\n"}},
		{name: "an unknown flag exits 2", args: []string{"serve", "--colour", "blue"}, code: 2, wantStderr: []string{"unknown flag: --colour", "patchd serve --help"}},
		{name: "an unknown flag without a command exits 2", args: []string{"--colour"}, code: 2, wantStderr: []string{"unknown flag: --colour"}},
		{name: "arguments serve does not take", args: []string{"serve", "extra"}, code: 2, wantStderr: []string{`unknown command "extra" for "patchd serve"`}},
		{name: "the old single-dash flags run serve with a warning", args: []string{"-lease", "0"}, code: 2,
			wantStderr: []string{"deprecated: flags without a command; running `patchd serve --lease 0`", "--lease 0s: must be positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := Main(tt.args, &stdout, &stderr, func(string) (string, bool) { return "", false })
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr.String())
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout %q does not contain %q", stdout.String(), w)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestServeConfigSources: patchd serve takes each setting from its flag,
// else its PATCHLINE_* variable, else the config file; a config file it
// cannot use stops it with exit 2 before anything starts.
func TestServeConfigSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("patchd.yaml", "lease: 3m\npoll: 30s\nlog-level: nonsense\n")
	typo := write("typo.yaml", "lease: 3m\nrepo_dir: /srv/fleet\n")
	bad := write("bad.yaml", "poll: often\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}{
		// The file's bad log level shows the file was read; a variable or
		// flag for it wins, so the lease is checked next.
		{name: "the file", args: []string{"serve", "--config", file}, code: 2, want: []string{"--log-level"}},
		{name: "a variable beats the file", args: []string{"serve", "--config", file}, env: map[string]string{"PATCHLINE_LOG_LEVEL": "warn", "PATCHLINE_LEASE": "0s"},
			code: 2, want: []string{"--lease 0s: must be positive"}},
		{name: "a flag beats the variable", args: []string{"serve", "--config", file, "--lease", "-1s", "--log-level", "warn"}, env: map[string]string{"PATCHLINE_LEASE": "0s"},
			code: 2, want: []string{"--lease -1s: must be positive"}},
		{name: "PATCHLINE_CONFIG names the file", args: []string{"serve"}, env: map[string]string{"PATCHLINE_CONFIG": file}, code: 2, want: []string{"--log-level"}},
		{name: "a missing named file", args: []string{"serve", "--config", filepath.Join(dir, "gone.yaml")}, code: 2, want: []string{"gone.yaml: no such file"}},
		{name: "an unknown key", args: []string{"serve", "--config", typo}, code: 2, want: []string{typo + ":2:", `unknown key "repo_dir"`, "did you mean repo, repo-dir?"}},
		{name: "a bad value", args: []string{"serve", "--config", bad}, code: 2, want: []string{bad + ":1: poll:", "want a duration"}},
		{name: "a bad variable", args: []string{"serve"}, env: map[string]string{"PATCHLINE_ENROLL_RATE": "lots"}, code: 2, want: []string{`PATCHLINE_ENROLL_RATE="lots"`, "want a number"}},
		{name: "restore reads the data directory from the file, skipping serve's keys", args: []string{"restore", filepath.Join(dir, "none.db"), "--config", write("restore.yaml", "lease: 3m\ndata-dir: "+dir+"\n")},
			code: 1, want: []string{"restore:", "none.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			code := Main(tt.args, &out, &out, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if code != tt.code {
				t.Errorf("exit %d, want %d; output %q", code, tt.code, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q does not contain %q", out.String(), w)
				}
			}
		})
	}
}
