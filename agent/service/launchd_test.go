package service

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
)

func TestPlistGolden(t *testing.T) {
	plist, err := Plist("/usr/local/bin/patch-agent", "/Library/Application Support/Patchline/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", LaunchdLabel+".plist"), plist)
}

// TestPlistParses reads the plist back as launchd would, for paths that
// need escaping, and lints it with plutil where there is one (macOS).
func TestPlistParses(t *testing.T) {
	tests := []struct{ name, exe, config string }{
		{"plain paths", "/usr/local/bin/patch-agent", "/Library/Application Support/Patchline/agent.yaml"},
		{"markup in the paths", "/opt/<Patch & Line>/patch-agent", `/Users/it's "ops"/]]>agent.yaml`},
		{"non-ASCII paths", "/Applications/Pätchline/patch-agent", "/Library/Application Support/Pätchline/agent.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plist, err := Plist(tt.exe, tt.config)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parsePlist(plist)
			if err != nil {
				t.Fatalf("%v\n%s", err, plist)
			}
			want := map[string]any{
				"Label":             LaunchdLabel,
				"ProgramArguments":  []any{tt.exe, "run", "--config", tt.config},
				"RunAtLoad":         true,
				"KeepAlive":         map[string]any{"SuccessfulExit": false},
				"ThrottleInterval":  int64(10),
				"ExitTimeOut":       int64(900),
				"StandardOutPath":   LaunchdLog,
				"StandardErrorPath": LaunchdLog,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("plist (-want +got):\n%s", diff)
			}
			if plutil, err := exec.LookPath("plutil"); err == nil {
				path := filepath.Join(t.TempDir(), "agent.plist")
				if err := os.WriteFile(path, plist, 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(plutil, "-lint", path).CombinedOutput(); err != nil {
					t.Errorf("plutil -lint: %v\n%s", err, out)
				}
			}
		})
	}
	if _, err := Plist("/usr/local/bin/patch-agent", "/etc/a\x00b"); err == nil {
		t.Error("Plist took a path with a NUL, which XML cannot hold")
	}
}

// parsePlist decodes an XML property list: dict, array, string, integer,
// true and false, which is all the agent's plist uses.
func parsePlist(b []byte) (map[string]any, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	sawDoctype := false
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.Directive:
			sawDoctype = strings.HasPrefix(string(tok), `DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)
		case xml.StartElement:
			if tok.Name.Local != "plist" || !sawDoctype {
				return nil, fmt.Errorf("want the plist DOCTYPE then <plist>, got <%s>", tok.Name.Local)
			}
			v, err := plistValue(d)
			if err != nil {
				return nil, err
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("top level is %T, want a dict", v)
			}
			return m, nil
		}
	}
}

// plistValue reads the next value element.
func plistValue(d *xml.Decoder) (any, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			return nil, io.EOF // the end of the enclosing array or dict
		case xml.StartElement:
			switch tok.Name.Local {
			case "dict":
				m := map[string]any{}
				for {
					var key string
					k, err := plistValue(d)
					if err == io.EOF {
						return m, nil
					}
					if err != nil {
						return nil, err
					}
					if key, err = keyOf(k); err != nil {
						return nil, err
					}
					v, err := plistValue(d)
					if err != nil {
						return nil, fmt.Errorf("key %s: %v", key, err)
					}
					m[key] = v
				}
			case "array":
				a := []any{}
				for {
					v, err := plistValue(d)
					if err == io.EOF {
						return a, nil
					}
					if err != nil {
						return nil, err
					}
					a = append(a, v)
				}
			case "key", "string", "integer":
				var s string
				if err := d.DecodeElement(&s, &tok); err != nil {
					return nil, err
				}
				switch tok.Name.Local {
				case "key":
					return plistKey(s), nil
				case "integer":
					return strconv.ParseInt(s, 10, 64)
				}
				return s, nil
			case "true", "false":
				if err := d.Skip(); err != nil {
					return nil, err
				}
				return tok.Name.Local == "true", nil
			}
			return nil, fmt.Errorf("unexpected <%s>", tok.Name.Local)
		}
	}
}

type plistKey string

func keyOf(v any) (string, error) {
	k, ok := v.(plistKey)
	if !ok {
		return "", fmt.Errorf("dict entry %v is not a <key>", v)
	}
	return string(k), nil
}

func TestLaunchd(t *testing.T) {
	const print = "launchctl print system/dev.patchline.agent"
	notLoaded := answer{out: `Could not find service "dev.patchline.agent" in domain for system`, code: 113}
	readFile := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name       string
		installed  bool
		answers    map[string]answer
		do         func(Manager) error
		wantStatus *Status
		// wantArgv's "PLIST" stands for the plist's path under the root.
		wantArgv  []string
		wantErr   error
		wantPlist bool
	}{
		{
			name:      "install writes the plist, enables and loads the daemon",
			answers:   map[string]answer{print: notLoaded},
			do:        func(m Manager) error { return m.Install(t.Context()) },
			wantArgv:  []string{print, "launchctl enable system/dev.patchline.agent", "launchctl bootstrap system PLIST"},
			wantPlist: true,
		},
		{
			name:      "install over a loaded daemon unloads it first",
			installed: true,
			do:        func(m Manager) error { return m.Install(t.Context()) },
			wantArgv:  []string{print, "launchctl bootout system/dev.patchline.agent", "launchctl enable system/dev.patchline.agent", "launchctl bootstrap system PLIST"},
			wantPlist: true,
		},
		{
			name:     "a failing launchctl print is an error, not a daemon to install",
			answers:  map[string]answer{print: {out: "Unrecognized target specifier.", code: 64}},
			do:       func(m Manager) error { return m.Install(t.Context()) },
			wantArgv: []string{print},
			wantErr:  &CommandError{},
		},
		{
			name:      "uninstall unloads the daemon and removes the plist",
			installed: true,
			do:        func(m Manager) error { return m.Uninstall(t.Context()) },
			wantArgv:  []string{print, "launchctl bootout system/dev.patchline.agent"},
		},
		{
			name:      "uninstall a daemon that is not loaded",
			installed: true,
			answers:   map[string]answer{print: notLoaded},
			do:        func(m Manager) error { return m.Uninstall(t.Context()) },
			wantArgv:  []string{print},
		},
		{
			name:    "uninstall without a plist",
			do:      func(m Manager) error { return m.Uninstall(t.Context()) },
			wantErr: ErrNotInstalled,
		},
		{
			name:      "start loads a stopped daemon",
			installed: true,
			answers:   map[string]answer{print: notLoaded},
			do:        func(m Manager) error { return m.Start(t.Context()) },
			wantArgv:  []string{print, "launchctl bootstrap system PLIST"},
			wantPlist: true,
		},
		{
			name:      "start a loaded daemon kicks it",
			installed: true,
			do:        func(m Manager) error { return m.Start(t.Context()) },
			wantArgv:  []string{print, "launchctl kickstart system/dev.patchline.agent"},
			wantPlist: true,
		},
		{
			name:    "start without a plist",
			do:      func(m Manager) error { return m.Start(t.Context()) },
			wantErr: ErrNotInstalled,
		},
		{
			name:      "stop unloads the daemon and keeps the plist",
			installed: true,
			do:        func(m Manager) error { return m.Stop(t.Context()) },
			wantArgv:  []string{print, "launchctl bootout system/dev.patchline.agent"},
			wantPlist: true,
		},
		{
			name:      "stop a daemon that is not loaded",
			installed: true,
			answers:   map[string]answer{print: notLoaded},
			do:        func(m Manager) error { return m.Stop(t.Context()) },
			wantArgv:  []string{print},
			wantPlist: true,
		},
		{
			name:       "status of a running daemon",
			installed:  true,
			answers:    map[string]answer{print: {out: readFile("launchctl-print-running.txt")}},
			wantArgv:   []string{print},
			wantStatus: &Status{Manager: "launchd system/dev.patchline.agent", Installed: true, Running: true, State: "running", PID: 512},
			wantPlist:  true,
		},
		{
			name:       "status of a daemon that exited 3, before launchd restarts it",
			installed:  true,
			answers:    map[string]answer{print: {out: readFile("launchctl-print-exited.txt")}},
			wantArgv:   []string{print},
			wantStatus: &Status{Manager: "launchd system/dev.patchline.agent", Installed: true, State: "not running", Detail: "last exit code 3"},
			wantPlist:  true,
		},
		{
			name:       "status of a stopped daemon",
			installed:  true,
			answers:    map[string]answer{print: notLoaded},
			wantArgv:   []string{print},
			wantStatus: &Status{Manager: "launchd system/dev.patchline.agent", Installed: true, State: "not loaded"},
			wantPlist:  true,
		},
		{
			name:       "status without a plist",
			wantStatus: &Status{Manager: "launchd system/dev.patchline.agent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, PlistPath)
			if tt.installed {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run := &fakeRunner{answers: tt.answers}
			m := launchd{Config{Exe: "/usr/local/bin/patch-agent", ConfigPath: "/Library/Application Support/Patchline/agent.yaml", Root: root, Run: run.run}}
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
			var want []string
			for _, l := range tt.wantArgv {
				want = append(want, strings.ReplaceAll(l, "PLIST", path))
			}
			if diff := cmp.Diff(want, run.lines()); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
			b, statErr := os.ReadFile(path)
			if (statErr == nil) != tt.wantPlist {
				t.Fatalf("plist present: %v, want %v", statErr == nil, tt.wantPlist)
			}
			if strings.HasPrefix(tt.name, "install") && tt.wantPlist {
				want, _ := Plist(m.cfg.Exe, m.cfg.ConfigPath)
				if !bytes.Equal(b, want) {
					t.Errorf("plist:\n%s\nwant:\n%s", b, want)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
					t.Errorf("plist mode %v, want 0644", fi.Mode().Perm())
				}
				if fi, err := os.Stat(filepath.Join(root, filepath.Dir(LaunchdLog))); err != nil || !fi.IsDir() {
					t.Errorf("log directory: %v", err)
				}
			}
		})
	}
}
