package packaging

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMakeInstall runs `make install DESTDIR=...` (with stand-in
// binaries, `-o build` keeping make from building the real ones) and
// checks the tree: the binaries under PREFIX, the units beside them
// running them from there, and the example configuration files, which
// a second install keeps as edited.
func TestMakeInstall(t *testing.T) {
	require(t, false, "make", "install", "sed")
	root := repoRoot(t)
	bins := t.TempDir()
	for _, b := range []string{"patchd", "patch-agent", "patchctl"} {
		writeFile(t, filepath.Join(bins, b), "stand-in for "+b+"\n", 0o755)
	}
	agentConf, err := os.ReadFile(filepath.Join(root, "examples/config/agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	patchdConf, err := os.ReadFile(filepath.Join(root, "examples/config/patchd.yaml"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		prefix string // where the units' ExecStart point
		units  string
	}{
		{"default prefix", nil, "/usr/local", "/usr/local/lib/systemd/system"},
		{"PREFIX=/usr", []string{"PREFIX=/usr"}, "/usr", "/usr/lib/systemd/system"},
		{"UNITDIR for a prefix systemd does not read", []string{"PREFIX=/opt/patchline", "UNITDIR=/etc/systemd/system"}, "/opt/patchline", "/etc/systemd/system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			makeInstall := func() string {
				t.Helper()
				args := append([]string{"--no-print-directory", "-o", "build", "install", "DESTDIR=" + dest, "INSTALL_BIN=" + bins}, tc.args...)
				out, err := run(t, root, nil, "make", args...)
				if err != nil {
					t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			makeInstall()

			got := map[string]string{}
			err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				fi, err := d.Info()
				if err != nil {
					return err
				}
				got[strings.TrimPrefix(p, dest)] = fi.Mode().String()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				tc.prefix + "/bin/patchd":         "-rwxr-xr-x",
				tc.prefix + "/bin/patch-agent":    "-rwxr-xr-x",
				tc.prefix + "/bin/patchctl":       "-rwxr-xr-x",
				tc.units + "/patchd.service":      "-rw-r--r--",
				tc.units + "/patch-agent.service": "-rw-r--r--",
				"/etc/patchline/patchd.yaml":      "-rw-r--r--",
				"/etc/patch-agent/agent.yaml":     "-rw-r--r--",
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("installed tree (-want +got):\n%s", d)
			}
			for name, sub := range map[string]string{"patchd": "serve", "patch-agent": "run"} {
				unit, _ := os.ReadFile(filepath.Join(dest, tc.units, name+".service"))
				line := "\nExecStart=" + tc.prefix + "/bin/" + name + " "
				if !strings.Contains(string(unit), line) {
					t.Errorf("%s.service has no %q:\n%s", name, line[1:], unit)
				}
				// The unit as shipped, the path aside: RenderUnit with the
				// same path gives the subcommand the unit runs.
				if _, err := RenderUnit(name+".service", unit, tc.prefix+"/bin/"+name, sub); err != nil {
					t.Error(err)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "etc/patch-agent/agent.yaml")); string(b) != string(agentConf) {
				t.Errorf("agent.yaml is not examples/config/agent.yaml")
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "etc/patchline/patchd.yaml")); string(b) != string(patchdConf) {
				t.Errorf("patchd.yaml is not examples/config/patchd.yaml")
			}

			// A second install keeps the configuration an admin edited.
			edited := "controller: https://patchd.msp.example:8420\n"
			writeFile(t, filepath.Join(dest, "etc/patch-agent/agent.yaml"), edited, 0o600)
			out := makeInstall()
			if !strings.Contains(out, "keeping "+dest+"/etc/patch-agent/agent.yaml") {
				t.Errorf("second make install does not say it keeps agent.yaml:\n%s", out)
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "etc/patch-agent/agent.yaml")); string(b) != edited {
				t.Errorf("second make install replaced the edited agent.yaml with:\n%s", b)
			}
		})
	}
}
