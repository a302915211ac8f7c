package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/patchline/patchline/agent/service"
)

// fakeManager records what the service commands ask of the service
// manager.
type fakeManager struct {
	cfg   service.Config
	calls []string
	err   error
}

func (f *fakeManager) do(name string) error            { f.calls = append(f.calls, name); return f.err }
func (f *fakeManager) Install(context.Context) error   { return f.do("install") }
func (f *fakeManager) Uninstall(context.Context) error { return f.do("uninstall") }
func (f *fakeManager) Start(context.Context) error     { return f.do("start") }
func (f *fakeManager) Stop(context.Context) error      { return f.do("stop") }
func (f *fakeManager) Status(context.Context) (service.Status, error) {
	return service.Status{Manager: "systemd patch-agent.service", Installed: true, Running: true, State: "active (running)", PID: 42}, f.do("status")
}

func TestServiceCommands(t *testing.T) {
	const exe = "/usr/bin/patch-agent"
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.yaml")
	const existingText = "controller: https://old.msp.example\n"
	tests := []struct {
		name    string
		args    []string
		mgrErr  error
		want    []string // the manager's calls
		wantOut string
		// wantErr is part of the error; wantCode its exit status (2 for
		// configuration errors, else 1).
		wantErr  string
		wantCode int
		// wantConfig is the config file's content afterwards, parsed,
		// when the test writes one (at dir/new.yaml unless the args name
		// another).
		wantConfig map[string]any
	}{
		{
			name: "install writes run's flags to a new config file",
			args: []string{"install", "--config", "NEW", "--controller", "https://patchd.msp.example:8420", "--client", "acme",
				"--enroll-token-file", "/etc/patch-agent/enroll-token", "--labels", "ring=pilot,site=leeds: north", "--report-interval", "30m", "--insecure",
				"--release-key", "/etc/patch-agent/release.pub"},
			want:    []string{"install", "status"},
			wantOut: "wrote NEW",
			wantConfig: map[string]any{
				"controller": "https://patchd.msp.example:8420", "client": "acme", "enroll-token-file": "/etc/patch-agent/enroll-token",
				"state-dir": "/var/lib/patch-agent", "labels": "ring=pilot,site=leeds: north", "report-interval": "30m", "insecure": true,
				"release-key": "/etc/patch-agent/release.pub",
			},
		},
		{
			name:       "install with an existing config file keeps it",
			args:       []string{"install", "--config", existing},
			want:       []string{"install", "status"},
			wantOut:    "service installed, running with --config " + existing,
			wantConfig: map[string]any{"controller": "https://old.msp.example"},
		},
		{
			name:       "run's flags do not replace a config file",
			args:       []string{"install", "--config", existing, "--controller", "https://new.msp.example"},
			wantErr:    "exists: pass --force",
			wantCode:   2,
			wantConfig: map[string]any{"controller": "https://old.msp.example"},
		},
		{
			name:       "--force replaces it",
			args:       []string{"install", "--config", existing, "--controller", "https://new.msp.example", "--state-dir", "/srv/agent", "--force"},
			want:       []string{"install", "status"},
			wantConfig: map[string]any{"controller": "https://new.msp.example", "state-dir": "/srv/agent"},
		},
		{
			name:     "install without a config file or run's flags",
			args:     []string{"install", "--config", "NEW"},
			wantErr:  "no config file at NEW: pass run's flags (--controller",
			wantCode: 2,
		},
		{
			name:     "a new config file needs the controller",
			args:     []string{"install", "--config", "NEW", "--client", "acme"},
			wantErr:  "--controller is required",
			wantCode: 2,
		},
		{
			name:     "a bad report interval is refused before anything is written",
			args:     []string{"install", "--config", "NEW", "--controller", "https://c.example", "--report-interval", "hourly"},
			wantErr:  `--report-interval "hourly"`,
			wantCode: 2,
		},
		{
			name:     "a bad confirm timeout is refused before anything is written",
			args:     []string{"install", "--config", "NEW", "--controller", "https://c.example", "--update-confirm-timeout", "soon"},
			wantErr:  `--update-confirm-timeout "soon"`,
			wantCode: 2,
		},
		{
			name:     "the service manager's refusal fails the install",
			args:     []string{"install", "--config", existing},
			mgrErr:   errors.New("systemctl daemon-reload: exit status 1: Access denied"),
			want:     []string{"install"},
			wantErr:  "Access denied",
			wantCode: 1,
		},
		{name: "start", args: []string{"start"}, want: []string{"start"}, wantOut: "service start: done"},
		{name: "stop", args: []string{"stop"}, want: []string{"stop"}, wantOut: "service stop: done"},
		{name: "uninstall", args: []string{"uninstall"}, want: []string{"uninstall"}, wantOut: "service uninstall: done"},
		{
			name: "uninstall when not installed is done already", args: []string{"uninstall"}, mgrErr: service.ErrNotInstalled,
			want: []string{"uninstall"}, wantOut: "nothing to uninstall: the patch-agent service is not installed",
		},
		{
			name: "start when not installed", args: []string{"start"}, mgrErr: service.ErrNotInstalled,
			want: []string{"start"}, wantErr: "patch-agent service install", wantCode: 1,
		},
		{
			name: "status", args: []string{"status"}, want: []string{"status"},
			wantOut: "systemd patch-agent.service: running (pid 42); state active (running)",
		},
		{name: "no arguments", args: []string{"start", "now"}, wantErr: "unknown command", wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(existing, []byte(existingText), 0o600); err != nil {
				t.Fatal(err)
			}
			newPath := filepath.Join(t.TempDir(), "etc", "patch-agent", "agent.yaml")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "NEW", newPath)
			}
			fm := &fakeManager{err: tt.mgrErr}
			cmd := newServiceCmdWith(serviceDeps{
				newManager: func(cfg service.Config) (service.Manager, error) { fm.cfg = cfg; return fm, nil },
				executable: func() (string, error) { return exe, nil },
			})
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(args)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			err := cmd.Execute()
			wantErr := strings.ReplaceAll(tt.wantErr, "NEW", newPath)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Fatalf("error %v, want one with %q", err, wantErr)
			}
			if err != nil {
				code := 0 // left to main: cobra's own errors
				var ec interface{ ExitCode() int }
				if errors.As(err, &ec) {
					code = ec.ExitCode()
				}
				if code != tt.wantCode {
					t.Errorf("exit status %d, want %d", code, tt.wantCode)
				}
			}
			if diff := cmp.Diff(tt.want, fm.calls); diff != "" {
				t.Errorf("manager calls (-want +got):\n%s", diff)
			}
			if fm.calls != nil {
				wantCfg := service.Config{Exe: exe, ConfigPath: serviceDefaultConfig()}
				if len(args) > 2 && args[1] == "--config" {
					wantCfg.ConfigPath = args[2]
				}
				if diff := cmp.Diff(wantCfg, fm.cfg); diff != "" {
					t.Errorf("manager config (-want +got):\n%s", diff)
				}
			}
			if wantOut := strings.ReplaceAll(tt.wantOut, "NEW", newPath); !strings.Contains(out.String(), wantOut) {
				t.Errorf("output %q, want it to hold %q", out.String(), wantOut)
			}
			if tt.wantConfig == nil {
				if _, err := os.Stat(newPath); err == nil {
					t.Errorf("%s written", newPath)
				}
				return
			}
			path := newPath
			if len(args) > 2 && args[2] == existing {
				path = existing
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := yaml.Unmarshal(b, &got); err != nil {
				t.Fatalf("config file: %v\n%s", err, b)
			}
			if diff := cmp.Diff(tt.wantConfig, got); diff != "" {
				t.Errorf("config file (-want +got):\n%s\n%s", diff, b)
			}
			if path == newPath {
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
					t.Errorf("config file mode %v, want 0600", fi.Mode().Perm())
				}
			}
		})
	}
}

// TestServiceHelp: the command main adds lists every subcommand, and
// install's help names its flags and the service it writes.
func TestServiceHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"install", "uninstall", "start", "stop", "status", service.UnitPath, service.PlistPath}},
		{[]string{"install", "--help"}, []string{"--config string", "(default \"" + serviceDefaultConfig() + "\")", "--force", "--controller", "--enroll-token-file", "--insecure"}},
	} {
		cmd := newServiceCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(tt.args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: help does not hold %q:\n%s", tt.args, w, out.String())
			}
		}
	}
}
