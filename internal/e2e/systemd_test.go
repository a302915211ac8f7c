package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnits checks the unit files of examples/systemd: systemd
// itself finds nothing to complain about (systemd-analyze verify, with the
// binaries built here in place of /usr/local/bin), and every flag their
// ExecStart passes is one the binary has.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing (Debian: systemd); CI needs it")
		}
		t.Skip("SKIPPING: systemd-analyze is missing (Debian: systemd); the unit files are not checked")
	}
	patchd, agent := binaries(t)
	bins := map[string]string{"patchd": patchd, "patch-agent": agent}
	dir := t.TempDir()
	for name, bin := range bins {
		t.Run(name, func(t *testing.T) {
			unit, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", name+".service"))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(unit), "/usr/local/bin/"+name, bin)
			path := filepath.Join(dir, name+".service")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command(analyze, "verify", path)
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, stderr.String())
			}

			// The flags ExecStart passes must exist.
			start := regexp.MustCompile(`(?ms)^ExecStart=(.*?[^\\])$`).FindStringSubmatch(strings.ReplaceAll(text, "\\\n", " "))
			if start == nil {
				t.Fatal("no ExecStart")
			}
			help, _ := execOutput(bin, "-h")
			for _, f := range regexp.MustCompile(`\s--([a-z-]+)`).FindAllStringSubmatch(start[1], -1) {
				if !strings.Contains(help, "  -"+f[1]+" ") && !strings.Contains(help, "  -"+f[1]+"\n") {
					t.Errorf("ExecStart passes --%s, which %s does not have", f[1], name)
				}
			}
		})
	}
}

// execOutput runs bin with args and returns what it printed.
func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}
