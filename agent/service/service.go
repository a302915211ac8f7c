// Package service installs patch-agent as a service of the endpoint's
// service manager and runs it under that manager: the Windows Service
// Control Manager, launchd on macOS, systemd on Linux.
//
// A Manager installs, uninstalls, starts, stops and queries the agent's
// service; New gives this machine's. Every service runs
// `<exe> run --config <path>`, restarts the agent when it exits with a
// non-zero status (exit status 3 is the agent's "restart me" after a
// self-update) and starts it at boot. External commands (systemctl,
// launchctl) go through a Runner and files are written under a root
// directory, so what each manager does is tested on any OS.
//
// RunService is the other half: `patch-agent run` hands its work to it,
// and on Windows, when the SCM started the process, it answers the SCM's
// control requests and logs to the Windows event log.
package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Manager is the agent's service in this machine's service manager.
type Manager interface {
	// Install registers the service so that it starts at boot and is
	// restarted when it fails; installing again updates it in place.
	Install(ctx context.Context) error
	// Uninstall stops the service and removes it; ErrNotInstalled when
	// there is none.
	Uninstall(ctx context.Context) error
	// Start starts the installed service.
	Start(ctx context.Context) error
	// Stop stops the running service and waits, until ctx ends, for it
	// to finish the job in progress.
	Stop(ctx context.Context) error
	// Status says whether the service is installed and running.
	Status(ctx context.Context) (Status, error)
}

// Config says what the service runs and where a Manager writes.
type Config struct {
	// Exe is the absolute path of the patch-agent binary the service runs.
	Exe string
	// ConfigPath is the absolute path of the agent's configuration file,
	// passed as `run --config`.
	ConfigPath string
	// Root is prepended to every file path a Manager writes or removes
	// (the unit, the plist); "" is the real root. Tests use a temporary
	// directory.
	Root string
	// Run runs external commands; nil runs them for real (ExecRunner).
	Run Runner
}

// ErrNotInstalled is returned when the service a command acts on is not
// installed.
var ErrNotInstalled = errors.New("the patch-agent service is not installed")

// Status is what the service manager says about the agent's service.
type Status struct {
	// Manager names the service manager and the service in it
	// ("systemd patch-agent.service").
	Manager string
	// Installed is whether the service is registered.
	Installed bool
	// Running is whether its process runs.
	Running bool
	// State is the service manager's own words for the state
	// ("active (running)", "stop-pending").
	State string
	// PID is the process id of the running agent, or 0.
	PID int
	// Detail is what else the manager said that a technician may need
	// (the last exit status, whether it starts at boot), or "".
	Detail string
}

// String is the status in one line, as `patch-agent service status`
// prints it.
func (s Status) String() string {
	var b strings.Builder
	b.WriteString(s.Manager + ": ")
	switch {
	case !s.Installed:
		b.WriteString("not installed")
	case s.Running:
		b.WriteString("running")
		if s.PID > 0 {
			fmt.Fprintf(&b, " (pid %d)", s.PID)
		}
	default:
		b.WriteString("not running")
	}
	if s.State != "" {
		b.WriteString("; state " + s.State)
	}
	if s.Detail != "" {
		b.WriteString("; " + s.Detail)
	}
	return b.String()
}

// New gives the Manager of this machine's service manager for cfg.
func New(cfg Config) (Manager, error) {
	if !filepath.IsAbs(cfg.Exe) {
		return nil, fmt.Errorf("service: the agent's path %q is not absolute", cfg.Exe)
	}
	if !filepath.IsAbs(cfg.ConfigPath) {
		return nil, fmt.Errorf("service: the config file's path %q is not absolute", cfg.ConfigPath)
	}
	if cfg.Run == nil {
		cfg.Run = ExecRunner
	}
	return newManager(cfg)
}

// Runner runs the command name with args and returns what it printed
// (stdout and stderr). A command that ran and exited non-zero gives a
// *CommandError.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// CommandError is a command that exited with a non-zero status.
type CommandError struct {
	Argv     []string
	ExitCode int
	Output   string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", strings.Join(e.Argv, " "), e.ExitCode)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += ": " + out
	}
	return msg
}

// ExecRunner runs commands for real.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return out.Bytes(), &CommandError{Argv: append([]string{name}, args...), ExitCode: ee.ExitCode(), Output: out.String()}
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w", name, err)
	}
	return out.Bytes(), nil
}

// exitCode is the exit status of err when it is a *CommandError, or -1.
func exitCode(err error) int {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.ExitCode
	}
	return -1
}
