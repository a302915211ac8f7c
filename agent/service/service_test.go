package service

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestExecRunner(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("SKIPPING: no sh to run")
	}
	out, err := ExecRunner(t.Context(), sh, "-c", "echo hello")
	if err != nil || string(out) != "hello\n" {
		t.Errorf("ExecRunner: %q, %v; want hello", out, err)
	}
	out, err = ExecRunner(t.Context(), sh, "-c", "echo Unit not found >&2; exit 5")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 5 || exitCode(err) != 5 || string(out) != "Unit not found\n" {
		t.Fatalf("ExecRunner: %q, %#v; want a CommandError with exit status 5 and the output", out, err)
	}
	if want := sh + " -c echo Unit not found >&2; exit 5: exit status 5: Unit not found"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := ExecRunner(t.Context(), "/nonexistent/launchctl"); err == nil || errors.As(err, &ce) || exitCode(err) != -1 {
		t.Errorf("a missing program: %v, want an error that is not a command's exit status", err)
	}
}

func TestNewRefusesRelativePaths(t *testing.T) {
	for _, cfg := range []Config{
		{Exe: "patch-agent", ConfigPath: "/etc/patch-agent/agent.yaml"},
		{Exe: "/usr/bin/patch-agent", ConfigPath: "agent.yaml"},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "not absolute") {
			t.Errorf("New(%+v): %v, want a path refused as not absolute", cfg, err)
		}
	}
}

func TestStatusString(t *testing.T) {
	for _, tt := range []struct {
		st   Status
		want string
	}{
		{Status{Manager: "systemd patch-agent.service"}, "systemd patch-agent.service: not installed"},
		{Status{Manager: "launchd system/dev.patchline.agent", Installed: true, State: "not loaded"}, "launchd system/dev.patchline.agent: not running; state not loaded"},
		{Status{Manager: "Windows service patch-agent", Installed: true, Running: true, State: "running", PID: 7}, "Windows service patch-agent: running (pid 7); state running"},
		{Status{Manager: "systemd patch-agent.service", Installed: true, State: "failed (failed)", Detail: "starts at boot, last exit status 2"},
			"systemd patch-agent.service: not running; state failed (failed); starts at boot, last exit status 2"},
	} {
		if got := tt.st.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}
