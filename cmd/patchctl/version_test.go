package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionOfEveryBinary builds patchd, patch-agent and patchctl with
// one version, as the Makefile does from VERSION, and runs `version` on
// each: all three print it the same way.
func TestVersionOfEveryBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries")
	}
	const version = "9.8.7-test"
	dir := t.TempDir()
	for _, name := range []string{"patchd", "patch-agent", "patchctl"} {
		out := filepath.Join(dir, name)
		build := exec.Command("go", "build", "-o", out,
			"-ldflags", "-X github.com/patchline/patchline/internal/buildinfo.version="+version, "../../cmd/"+name)
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, b)
		}
		got, err := exec.Command(out, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", name, err)
		}
		want := name + " " + version + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
		if string(got) != want {
			t.Errorf("%s version printed %q, want %q", name, got, want)
		}
	}
}

// TestConnectionFromTheEnvironment: --controller and --token-file come
// from PATCHLINE_CONTROLLER and PATCHLINE_TOKEN_FILE when not given; a
// flag wins over its variable.
func TestConnectionFromTheEnvironment(t *testing.T) {
	url, admin := startController(t)
	t.Setenv("PATCHLINE_TOKEN", "")
	t.Setenv("PATCHLINE_ADMIN_TOKEN", "")
	tests := []struct {
		name       string
		args       []string
		controller string
		tokenFile  string
		wantOK     bool
		want       string
	}{
		{name: "both from the environment", args: []string{"status"}, controller: url, tokenFile: admin, wantOK: true},
		{name: "the flag wins over the variable", args: []string{"status", "--controller", url}, controller: "http://192.0.2.1:8420", tokenFile: admin, wantOK: true},
		{name: "a variable's bad URL is refused like the flag's", args: []string{"status"}, controller: "http://192.0.2.1:8420", tokenFile: admin, want: "plain http would send the admin token in clear"},
		{name: "no controller at all", args: []string{"status"}, tokenFile: admin, want: `required flag(s) "controller" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATCHLINE_CONTROLLER", tt.controller)
			t.Setenv("PATCHLINE_TOKEN_FILE", tt.tokenFile)
			if tt.controller == "" {
				// Unset, not empty (an empty variable is a value);
				// t.Setenv restores it after the test.
				os.Unsetenv("PATCHLINE_CONTROLLER")
			}
			code, _, errOut := run(t, tt.args...)
			if (code == 0) != tt.wantOK || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want success %v, a message with %q", code, errOut, tt.wantOK, tt.want)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "patchctl ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("patchctl version: exit %d, %q", code, out)
	}
}
