package service

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/patchline/patchline/internal/atomicfile"
)

// SystemdUnit is the name of the agent's systemd unit, and UnitPath where
// `service install` writes it (where an administrator's units go; a
// package's copy under /usr/lib/systemd/system yields to it).
const (
	SystemdUnit = "patch-agent.service"
	UnitPath    = "/etc/systemd/system/" + SystemdUnit
)

// The unit keeps every setting of examples/systemd/patch-agent.service
// (a test compares them); only ExecStart differs, as the settings live in
// the config file.
var unitTemplate = template.Must(template.New("unit").Funcs(template.FuncMap{"arg": systemdArg, "exe": systemdExe}).Parse(`# patch-agent, the Patchline agent, as a systemd service. Written by
# ` + "`patch-agent service install`" + `; the agent's settings are in its config file.
[Unit]
Description=Patchline agent (patch-agent)
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart={{exe .Exe}} run --config {{arg .ConfigPath}}
# A job in progress is recorded before it starts, so a stop or a crash
# never runs it twice; results wait on disk until patchd has them.
# Exit 3 (a new binary is in place) restarts it; exit 2 is a configuration
# to fix (the journal says what), which a restart would not mend.
Restart=always
RestartSec=10s
RestartPreventExitStatus=2
# Installing packages may take a while: let the current one finish.
TimeoutStopSec=15min
KillMode=mixed
StateDirectory=patch-agent
StateDirectoryMode=0700

[Install]
WantedBy=multi-user.target
`))

// Unit renders the systemd unit that runs exe with the config file
// configPath.
func Unit(exe, configPath string) ([]byte, error) {
	if err := checkPaths(exe, configPath); err != nil {
		return nil, err
	}
	if strings.ContainsAny(exe, `"'\`) {
		return nil, fmt.Errorf("service: systemd cannot run a program whose path holds a quote or a backslash: %q", exe)
	}
	var b bytes.Buffer
	if err := unitTemplate.Execute(&b, Config{Exe: exe, ConfigPath: configPath}); err != nil {
		return nil, fmt.Errorf("render %s: %w", SystemdUnit, err)
	}
	return b.Bytes(), nil
}

// systemdArg writes s as one word of an ExecStart line: '%' and '$'
// doubled so systemd neither expands specifiers nor variables in it, and
// in double quotes, with backslash escapes, when it holds a blank, a
// quote, a backslash or a semicolon. checkPaths keeps control characters
// out.
func systemdArg(s string) string {
	s = strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	if !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// systemdExe writes path as the program of an ExecStart line, where
// systemd expands specifiers but not variables, and refuses quotes and
// backslashes (Unit does too): '%' doubled, the path in double quotes
// when it holds a blank or a semicolon.
func systemdExe(path string) string {
	path = strings.ReplaceAll(path, "%", "%%")
	if strings.ContainsAny(path, " \t;") {
		return `"` + path + `"`
	}
	return path
}

// checkPaths refuses paths no service definition can carry safely.
func checkPaths(paths ...string) error {
	for _, p := range paths {
		for _, r := range p {
			if r < 0x20 || r == 0x7f {
				return fmt.Errorf("service: path %q holds a control character", p)
			}
		}
	}
	return nil
}

// systemd is the agent's service on Linux: a unit file and systemctl.
type systemd struct{ cfg Config }

func (m systemd) unitFile() string { return filepath.Join(m.cfg.Root, UnitPath) }

func (m systemd) systemctl(ctx context.Context, args ...string) ([]byte, error) {
	return m.cfg.Run(ctx, "systemctl", args...)
}

// Install writes the unit, reloads systemd and enables the unit at boot;
// it does not start it (Start does).
func (m systemd) Install(ctx context.Context) error {
	unit, err := Unit(m.cfg.Exe, m.cfg.ConfigPath)
	if err != nil {
		return err
	}
	path := m.unitFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, unit, 0o644); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	if _, err := m.systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	_, err = m.systemctl(ctx, "enable", SystemdUnit)
	return err
}

// Uninstall stops and disables the unit, removes its file and reloads
// systemd.
func (m systemd) Uninstall(ctx context.Context) error {
	path := m.unitFile()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: no unit at %s", ErrNotInstalled, path)
	}
	if _, err := m.systemctl(ctx, "disable", "--now", SystemdUnit); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	_, err := m.systemctl(ctx, "daemon-reload")
	return err
}

// systemctlNoUnit is systemctl's exit status for a unit it does not know.
const systemctlNoUnit = 5

func (m systemd) Start(ctx context.Context) error {
	_, err := m.systemctl(ctx, "start", SystemdUnit)
	if exitCode(err) == systemctlNoUnit {
		return fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	return err
}

// Stop waits for the unit to stop: systemctl stop returns once the agent
// has exited (after at most TimeoutStopSec).
func (m systemd) Stop(ctx context.Context) error {
	_, err := m.systemctl(ctx, "stop", SystemdUnit)
	if exitCode(err) == systemctlNoUnit {
		return fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	return err
}

// Status asks systemctl show, which answers for an unknown unit too
// (LoadState=not-found), so a unit a package installed counts as well as
// one Install wrote.
func (m systemd) Status(ctx context.Context) (Status, error) {
	out, err := m.systemctl(ctx, "show", SystemdUnit, "--property=LoadState,ActiveState,SubState,MainPID,UnitFileState,ExecMainStatus")
	if err != nil {
		return Status{}, err
	}
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			props[k] = v
		}
	}
	st := Status{Manager: "systemd " + SystemdUnit}
	if props["LoadState"] != "loaded" {
		return st, nil
	}
	st.Installed = true
	st.State = props["ActiveState"]
	if sub := props["SubState"]; sub != "" {
		st.State += " (" + sub + ")"
	}
	st.PID, _ = strconv.Atoi(props["MainPID"])
	st.Running = props["ActiveState"] == "active" && st.PID > 0
	var detail []string
	switch props["UnitFileState"] {
	case "enabled":
		detail = append(detail, "starts at boot")
	case "":
	default:
		detail = append(detail, "unit file "+props["UnitFileState"])
	}
	if s := props["ExecMainStatus"]; !st.Running && s != "" && s != "0" {
		detail = append(detail, "last exit status "+s)
	}
	st.Detail = strings.Join(detail, ", ")
	return st, nil
}
