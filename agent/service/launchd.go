package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
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

// The agent's launchd daemon: its label, where `service install` writes
// its property list, and where launchd sends its output.
const (
	LaunchdLabel = "dev.patchline.agent"
	PlistPath    = "/Library/LaunchDaemons/" + LaunchdLabel + ".plist"
	LaunchdLog   = "/Library/Logs/Patchline/patch-agent.log"
)

// KeepAlive with SuccessfulExit false restarts the agent after any
// non-zero exit (3 after a self-update), not after a clean stop;
// ThrottleInterval spaces restarts 10 s apart, as RestartSec does for
// systemd; ExitTimeOut lets a stop wait 15 minutes for the install in
// progress, as TimeoutStopSec does.
var plistTemplate = template.Must(template.New("plist").Funcs(template.FuncMap{"xml": xmlText}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{xml .Label}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{xml .Exe}}</string>
		<string>run</string>
		<string>--config</string>
		<string>{{xml .ConfigPath}}</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ExitTimeOut</key>
	<integer>900</integer>
	<key>StandardOutPath</key>
	<string>{{xml .Log}}</string>
	<key>StandardErrorPath</key>
	<string>{{xml .Log}}</string>
</dict>
</plist>
`))

// Plist renders the launchd property list that runs exe with the config
// file configPath.
func Plist(exe, configPath string) ([]byte, error) {
	if err := checkPaths(exe, configPath); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	data := struct{ Label, Exe, ConfigPath, Log string }{LaunchdLabel, exe, configPath, LaunchdLog}
	if err := plistTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", filepath.Base(PlistPath), err)
	}
	return b.Bytes(), nil
}

func xmlText(s string) (string, error) {
	var b strings.Builder
	err := xml.EscapeText(&b, []byte(s))
	return b.String(), err
}

// launchd is the agent's service on macOS: a daemon in the system domain.
type launchd struct{ cfg Config }

const launchdTarget = "system/" + LaunchdLabel

func (m launchd) plistFile() string { return filepath.Join(m.cfg.Root, PlistPath) }

func (m launchd) launchctl(ctx context.Context, args ...string) ([]byte, error) {
	return m.cfg.Run(ctx, "launchctl", args...)
}

// print is `launchctl print` of the daemon; loaded is false when launchd
// does not have it.
func (m launchd) print(ctx context.Context) (out []byte, loaded bool, err error) {
	out, err = m.launchctl(ctx, "print", launchdTarget)
	var ce *CommandError
	if errors.As(err, &ce) && (ce.ExitCode == 113 || strings.Contains(ce.Output, "Could not find service")) {
		return out, false, nil
	}
	return out, err == nil, err
}

// Install writes the plist (0644, root:wheel, as launchd requires of a
// daemon's), enables the daemon and loads it, which starts it
// (RunAtLoad). A loaded daemon is unloaded first, so installing again
// picks up a new plist.
func (m launchd) Install(ctx context.Context) error {
	plist, err := Plist(m.cfg.Exe, m.cfg.ConfigPath)
	if err != nil {
		return err
	}
	_, loaded, err := m.print(ctx)
	if err != nil {
		return err
	}
	if loaded {
		if _, err := m.launchctl(ctx, "bootout", launchdTarget); err != nil {
			return err
		}
	}
	path := m.plistFile()
	for _, dir := range []string{filepath.Dir(path), filepath.Join(m.cfg.Root, filepath.Dir(LaunchdLog))} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	if err := atomicfile.WriteFile(path, plist, 0o644); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		// launchd refuses a daemon's plist that is not owned by root:wheel
		// (uid and gid 0 on macOS).
		if err := os.Chown(path, 0, 0); err != nil {
			return fmt.Errorf("install %s: %w", path, err)
		}
	}
	if _, err := m.launchctl(ctx, "enable", launchdTarget); err != nil {
		return err
	}
	_, err = m.launchctl(ctx, "bootstrap", "system", path)
	return err
}

func (m launchd) installed() error {
	if _, err := os.Stat(m.plistFile()); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: no plist at %s", ErrNotInstalled, m.plistFile())
	}
	return nil
}

// Uninstall unloads the daemon (stopping it) and removes its plist.
func (m launchd) Uninstall(ctx context.Context) error {
	if err := m.installed(); err != nil {
		return err
	}
	if err := m.Stop(ctx); err != nil {
		return err
	}
	if err := os.Remove(m.plistFile()); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}

// Start loads the daemon when it is not loaded (a stop unloads it), or
// else starts it if it is not running.
func (m launchd) Start(ctx context.Context) error {
	if err := m.installed(); err != nil {
		return err
	}
	_, loaded, err := m.print(ctx)
	if err != nil {
		return err
	}
	if !loaded {
		_, err = m.launchctl(ctx, "bootstrap", "system", m.plistFile())
		return err
	}
	_, err = m.launchctl(ctx, "kickstart", launchdTarget)
	return err
}

// Stop unloads the daemon: KeepAlive would otherwise restart it. The
// plist stays, so it starts again at boot, as a stopped systemd unit
// that is enabled does.
func (m launchd) Stop(ctx context.Context) error {
	if err := m.installed(); err != nil {
		return err
	}
	_, loaded, err := m.print(ctx)
	if err != nil || !loaded {
		return err
	}
	_, err = m.launchctl(ctx, "bootout", launchdTarget)
	return err
}

// Status reads `launchctl print`: its top-level "state", "pid" and
// "last exit code" lines.
func (m launchd) Status(ctx context.Context) (Status, error) {
	st := Status{Manager: "launchd " + launchdTarget}
	if m.installed() != nil {
		return st, nil
	}
	st.Installed = true
	out, loaded, err := m.print(ctx)
	if err != nil {
		return Status{}, err
	}
	if !loaded {
		st.State = "not loaded"
		return st, nil
	}
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		// The daemon's own properties are indented by one tab; deeper
		// ones belong to nested sections.
		if !strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "\t\t") {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok {
			if _, seen := props[k]; !seen {
				props[k] = v
			}
		}
	}
	st.State = props["state"]
	st.PID, _ = strconv.Atoi(props["pid"])
	st.Running = st.State == "running"
	if c := props["last exit code"]; c != "" && c != "0" && !st.Running {
		st.Detail = "last exit code " + c
	}
	return st, nil
}
