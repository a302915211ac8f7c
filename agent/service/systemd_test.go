package service

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
)

func TestUnitGolden(t *testing.T) {
	unit, err := Unit("/usr/bin/patch-agent", "/etc/patch-agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "patch-agent.service"), unit)
}

func TestUnitExecStartQuoting(t *testing.T) {
	tests := []struct {
		name, exe, config string
		want              string // the ExecStart line
		wantErr           string
	}{
		{name: "plain paths", exe: "/usr/bin/patch-agent", config: "/etc/patch-agent/agent.yaml",
			want: "ExecStart=/usr/bin/patch-agent run --config /etc/patch-agent/agent.yaml"},
		{name: "a blank quotes the word", exe: "/opt/Patch Line/patch-agent", config: "/etc/patch agent.yaml",
			want: `ExecStart="/opt/Patch Line/patch-agent" run --config "/etc/patch agent.yaml"`},
		{name: "specifiers are not expanded, variables not in the program", exe: "/opt/100%/$HOME/patch-agent", config: "/etc/100%/$HOME/a.yaml",
			want: "ExecStart=/opt/100%%/$HOME/patch-agent run --config /etc/100%%/$$HOME/a.yaml"},
		{name: "quotes and backslashes in an argument are escaped", exe: "/usr/bin/patch-agent", config: `/etc/a"b\c/it's.yaml`,
			want: `ExecStart=/usr/bin/patch-agent run --config "/etc/a\"b\\c/it's.yaml"`},
		{name: "a semicolon quotes the word", exe: "/opt/a;b/patch-agent", config: "/etc/a;b.yaml",
			want: `ExecStart="/opt/a;b/patch-agent" run --config "/etc/a;b.yaml"`},
		{name: "systemd runs no program with a quote in its path", exe: `/opt/it's/patch-agent`, config: "/etc/a.yaml",
			wantErr: "quote or a backslash"},
		{name: "a newline is refused", exe: "/usr/bin/patch-agent", config: "/etc/a\nExecStartPre=/bin/rm.yaml",
			wantErr: "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, err := Unit(tt.exe, tt.config)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unit: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, line := range strings.Split(string(unit), "\n") {
				if strings.HasPrefix(line, "ExecStart=") {
					got = line
				}
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestUnitVerifies has systemd check the unit, with an agent at a path
// that needs quoting and escaping: systemd-analyze verify fails on a
// binary that is not where ExecStart says.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing (Debian: systemd); CI needs it")
		}
		t.Skip("SKIPPING: systemd-analyze is missing (Debian: systemd); the unit is not checked")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), `Patch Line 100% $x;`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "patch-agent")
	if err := os.Symlink(self, exe); err != nil {
		t.Fatal(err)
	}
	unit, err := Unit(exe, filepath.Join(dir, `it's "$HOME".yaml`))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), SystemdUnit)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(analyze, "verify", path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
	// Verify also fails when the binary is missing, so it read the path.
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(analyze, "verify", path).Run(); err == nil {
		t.Error("systemd-analyze verify passed with the agent missing: it did not read ExecStart's path")
	}
}

// unitSettings reads a unit's key=value lines by section, without
// comments, continuation lines joined.
func unitSettings(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	section := ""
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q is not key=value", line)
			}
			out[section+k] = v
		}
	}
	return out
}

// TestUnitAgreesWithExample keeps the unit `service install` writes and
// examples/systemd/patch-agent.service the same but for ExecStart: a
// setting changed in one must change in the other.
func TestUnitAgreesWithExample(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", SystemdUnit))
	if err != nil {
		t.Fatal(err)
	}
	unit, err := Unit("/usr/bin/patch-agent", "/etc/patch-agent/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, got := unitSettings(t, string(example)), unitSettings(t, string(unit))
	for _, m := range []map[string]string{want, got} {
		if !strings.Contains(m["[Service]ExecStart"], "patch-agent") {
			t.Fatalf("no ExecStart running patch-agent in %v", m)
		}
		delete(m, "[Service]ExecStart")
	}
	if len(want) < 8 {
		t.Fatalf("read only %d settings from the example: the test no longer reads it", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings of examples/systemd/%s (-) and of the unit service install writes (+) differ:\n%s", SystemdUnit, diff)
	}
}

const showRunning = `LoadState=loaded
ActiveState=active
SubState=running
MainPID=4242
UnitFileState=enabled
ExecMainStatus=0
`

const showFailed = `LoadState=loaded
ActiveState=activating
SubState=auto-restart
MainPID=0
UnitFileState=enabled
ExecMainStatus=2
`

const showMissing = `LoadState=not-found
ActiveState=inactive
SubState=dead
MainPID=0
UnitFileState=
ExecMainStatus=0
`

func TestSystemd(t *testing.T) {
	const show = "systemctl show patch-agent.service --property=LoadState,ActiveState,SubState,MainPID,UnitFileState,ExecMainStatus"
	tests := []struct {
		name string
		// installed writes a unit first.
		installed  bool
		answers    map[string]answer
		do         func(Manager) error
		wantStatus *Status
		wantArgv   []string
		wantErr    error
		// wantUnit is whether the unit file exists afterwards.
		wantUnit bool
	}{
		{
			name:     "install writes the unit, reloads and enables it",
			do:       func(m Manager) error { return m.Install(t.Context()) },
			wantArgv: []string{"systemctl daemon-reload", "systemctl enable patch-agent.service"},
			wantUnit: true,
		},
		{
			name:      "install again replaces the unit",
			installed: true,
			do:        func(m Manager) error { return m.Install(t.Context()) },
			wantArgv:  []string{"systemctl daemon-reload", "systemctl enable patch-agent.service"},
			wantUnit:  true,
		},
		{
			name:      "uninstall stops and disables, removes the unit and reloads",
			installed: true,
			do:        func(m Manager) error { return m.Uninstall(t.Context()) },
			wantArgv:  []string{"systemctl disable --now patch-agent.service", "systemctl daemon-reload"},
		},
		{
			name:    "uninstall without a unit",
			do:      func(m Manager) error { return m.Uninstall(t.Context()) },
			wantErr: ErrNotInstalled,
		},
		{
			name:      "a failed disable keeps the unit",
			installed: true,
			answers:   map[string]answer{"systemctl disable --now patch-agent.service": {out: "Failed to disable unit: Access denied", code: 1}},
			do:        func(m Manager) error { return m.Uninstall(t.Context()) },
			wantArgv:  []string{"systemctl disable --now patch-agent.service"},
			wantErr:   &CommandError{},
			wantUnit:  true,
		},
		{
			name:      "start",
			installed: true,
			do:        func(m Manager) error { return m.Start(t.Context()) },
			wantArgv:  []string{"systemctl start patch-agent.service"},
			wantUnit:  true,
		},
		{
			name:     "start a unit systemd does not know",
			answers:  map[string]answer{"systemctl start patch-agent.service": {out: "Failed to start patch-agent.service: Unit patch-agent.service not found.", code: 5}},
			do:       func(m Manager) error { return m.Start(t.Context()) },
			wantArgv: []string{"systemctl start patch-agent.service"},
			wantErr:  ErrNotInstalled,
		},
		{
			name:      "stop",
			installed: true,
			do:        func(m Manager) error { return m.Stop(t.Context()) },
			wantArgv:  []string{"systemctl stop patch-agent.service"},
			wantUnit:  true,
		},
		{
			name:       "status of a running agent",
			installed:  true,
			answers:    map[string]answer{show: {out: showRunning}},
			wantArgv:   []string{show},
			wantStatus: &Status{Manager: "systemd patch-agent.service", Installed: true, Running: true, State: "active (running)", PID: 4242, Detail: "starts at boot"},
			wantUnit:   true,
		},
		{
			name:       "status of an agent waiting to restart after a failure",
			installed:  true,
			answers:    map[string]answer{show: {out: showFailed}},
			wantArgv:   []string{show},
			wantStatus: &Status{Manager: "systemd patch-agent.service", Installed: true, State: "activating (auto-restart)", Detail: "starts at boot, last exit status 2"},
			wantUnit:   true,
		},
		{
			name:       "status without a unit",
			answers:    map[string]answer{show: {out: showMissing}},
			wantArgv:   []string{show},
			wantStatus: &Status{Manager: "systemd patch-agent.service"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, "etc", "systemd", "system", SystemdUnit)
			if tt.installed {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := &fakeRunner{answers: tt.answers}
			m := systemd{Config{Exe: "/usr/bin/patch-agent", ConfigPath: "/etc/patch-agent/agent.yaml", Root: root, Run: run.run}}
			var err error
			if tt.wantStatus != nil {
				var st Status
				st, err = m.Status(t.Context())
				if diff := cmp.Diff(*tt.wantStatus, st); diff != "" {
					t.Errorf("status (-want +got):\n%s", diff)
				}
			} else {
				err = tt.do(m)
			}
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.wantArgv, run.lines()); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			b, statErr := os.ReadFile(path)
			if (statErr == nil) != tt.wantUnit {
				t.Fatalf("unit file present: %v, want %v", statErr == nil, tt.wantUnit)
			}
			if tt.wantUnit && tt.do != nil && strings.Contains(tt.name, "install") {
				want, _ := Unit(m.cfg.Exe, m.cfg.ConfigPath)
				if !bytes.Equal(b, want) {
					t.Errorf("unit file:\n%s\nwant:\n%s", b, want)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
					t.Errorf("unit file mode %v, want 0644", fi.Mode().Perm())
				}
			}
		})
	}
}

// checkErr fails t unless err is want: nil for none, a sentinel by
// errors.Is, a *CommandError by errors.As.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch w := want.(type) {
	case nil:
		if err != nil {
			t.Errorf("error %v, want none", err)
		}
	case *CommandError:
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Errorf("error %v, want a command's", err)
		}
		_ = w
	default:
		if !errors.Is(err, want) {
			t.Errorf("error %v, want %v", err, want)
		}
	}
}
