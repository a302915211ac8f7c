package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/buildinfo"
)

// TestCLI: patch-agent's command line as a user meets it: help on
// stdout, usage mistakes exit 2 at once, the version, the old flags.
func TestCLI(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStdout []string
		wantStderr []string
	}{
		{name: "--help is cobra's, on stdout", args: []string{"--help"}, wantStdout: []string{"Usage:", "patch-agent [command]", "run", "inventory", "version", "PATCHLINE_STATE_DIR"}},
		{name: "run --help lists its flags but not the old name", args: []string{"run", "--help"},
			wantStdout: []string{"patch-agent run [flags]", "--enroll-token-file file", "--config file", "/etc/patch-agent/agent.yaml"}},
		{name: "version", args: []string{"version"}, wantStdout: []string{buildinfo.Line("patch-agent") + "\n"}},
		{name: "an unknown flag exits 2", args: []string{"run", "--colour", "blue"}, code: 2, wantStderr: []string{"unknown flag: --colour", "patch-agent run --help"}},
		{name: "an unknown command exits 2", args: []string{"rnu"}, code: 2, wantStderr: []string{`unknown command "rnu"`}},
		{name: "no controller", args: []string{"run", "--state-dir", t.TempDir()}, code: 2, wantStderr: []string{"give --controller URL and --state-dir DIR", "PATCHLINE_CONTROLLER"}},
		{name: "the old single-dash flags run run, with a warning", args: []string{"-state-dir", "/x", "-report-interval", "0s"}, code: 2,
			wantStderr: []string{"deprecated: flags without a command; running `patch-agent run --state-dir /x --report-interval 0s`", "give --controller URL"}},
		{name: "the old --enroll-secret-file works, with a warning", args: []string{"run", "--enroll-secret-file", "/x"}, code: 2,
			wantStderr: []string{"patch-agent: flag --enroll-secret-file is deprecated, use --enroll-token-file", "give --controller URL"}},
		{name: "inventory's single-dash flags, with a warning", args: []string{"inventory", "-format", "yaml"}, code: 2,
			wantStderr: []string{"deprecated: flags with one dash; running `patch-agent inventory --format yaml`", `--format "yaml": want text or json`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := Main(tt.args, &stdout, &stderr, noEnv)
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
			if strings.Contains(stdout.String(), "enroll-secret-file") {
				t.Errorf("help shows the deprecated --enroll-secret-file:\n%s", stdout.String())
			}
		})
	}
}

// TestRunWithoutEnrollment: on a fresh state directory, patch-agent run
// without a client or a token stops at once with exit 2 and says which
// flags (and variables) to give, instead of retrying a controller it
// could never enrol with. The controller address is one nothing listens
// on: the agent must not get as far as trying it.
func TestRunWithoutEnrollment(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("pl_enroll_abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"neither", nil},
		{"a client, no token", []string{"--client", "acme"}},
		{"a token, no client", []string{"--enroll-token-file", token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--controller", "http://127.0.0.1:1", "--state-dir", t.TempDir(), "--backend", "sim"}, tc.args...)
			var stderr strings.Builder
			done := make(chan int, 1)
			go func() { done <- Main(args, io.Discard, &stderr, noEnv) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("patch-agent run without enrollment is still running after 30s; want it to exit at once")
			}
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			for _, w := range []string{"holds no enrollment yet", "--client ID", "--enroll-token-file FILE", "PATCHLINE_CLIENT", "PATCHLINE_ENROLL_TOKEN_FILE"} {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not name %q", stderr.String(), w)
				}
			}
		})
	}
}

// TestRunConfigSources: run takes each setting from its flag, else its
// PATCHLINE_* variable, else the config file, and refuses a file it
// cannot use with exit 2.
func TestRunConfigSources(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("agent.yaml", "controller: http://127.0.0.1:1\nstate-dir: "+dir+"\nbackend: sim\nlabels: ring=pilot\nreport-interval: 0s\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		// A report interval of 0 is refused: which source it came from
		// shows in what the agent says next.
		{name: "the file", args: []string{"run", "--config", file}, want: []string{"--report-interval 0s: must be positive"}},
		{name: "a variable beats the file", args: []string{"run", "--config", file}, env: map[string]string{"PATCHLINE_REPORT_INTERVAL": "-1m"},
			want: []string{"--report-interval -1m0s: must be positive"}},
		{name: "a flag beats the variable", args: []string{"run", "--config", file, "--report-interval", "1h"}, env: map[string]string{"PATCHLINE_REPORT_INTERVAL": "-1m"},
			want: []string{"holds no enrollment yet"}},
		{name: "PATCHLINE_CONFIG names the file", args: []string{"run"}, env: map[string]string{"PATCHLINE_CONFIG": file},
			want: []string{"--report-interval 0s: must be positive"}},
		{name: "an unknown key", args: []string{"run", "--config", write("typo.yaml", "controler: https://c\n")},
			want: []string{"typo.yaml:1:", `unknown key "controler"`, "did you mean controller?"}},
		{name: "the deprecated key", args: []string{"run", "--config", write("old.yaml", "enroll-secret-file: /x\n")},
			want: []string{"old.yaml:1:", "use --enroll-token-file"}},
		{name: "a bad value", args: []string{"run", "--config", write("bad.yaml", "insecure: yes please\n")},
			want: []string{"bad.yaml:1: insecure:", "want true or false"}},
		{name: "inventory skips run's keys", args: []string{"inventory", "--config", file, "--format", "yaml"}, want: []string{`--format "yaml"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			code := Main(tt.args, io.Discard, &stderr, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr %q", code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), w)
				}
			}
		})
	}
}

func TestDefaultConfigFile(t *testing.T) {
	env := func(k string) (string, bool) { return `D:\Data`, k == "ProgramData" }
	for _, tc := range []struct{ goos, want string }{
		{"linux", "/etc/patch-agent/agent.yaml"},
		{"darwin", "/Library/Application Support/Patchline/agent.yaml"},
		{"windows", `D:\Data\Patchline\agent.yaml`},
	} {
		if got := defaultConfigFile(tc.goos, env); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.goos, got, tc.want)
		}
	}
	if got := defaultConfigFile("windows", noEnv); got != `C:\ProgramData\Patchline\agent.yaml` {
		t.Errorf("windows without ProgramData: %q", got)
	}
}
