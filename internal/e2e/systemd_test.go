package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestSystemdUnits checks the unit files of examples/systemd: systemd
// itself finds nothing to complain about (systemd-analyze verify, with the
// binaries built here in place of /usr/bin), ExecStart runs the binary's
// serve or run command with flags it has, the config file the comments
// show holds only keys that command takes, and the replica's unit is
// hardened as patchd's.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing (Debian: systemd); CI needs it")
		}
		t.Skip("SKIPPING: systemd-analyze is missing (Debian: systemd); the unit files are not checked")
	}
	patchd, agent := binaries(t)
	dir := t.TempDir()
	for _, u := range []struct{ name, binName, bin, command string }{
		{"patchd", "patchd", patchd, "serve"},
		{"patchd-replica", "patchd", patchd, "serve"},
		{"patch-agent", "patch-agent", agent, "run"},
	} {
		name, bin := u.name, u.bin
		t.Run(name, func(t *testing.T) {
			unit, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", name+".service"))
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(unit), "/usr/bin/"+u.binName+" ", bin+" ")
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

			// ExecStart runs the command, with flags it has.
			start := regexp.MustCompile(`(?ms)^ExecStart=(.*?[^\\])$`).FindStringSubmatch(strings.ReplaceAll(text, "\\\n", " "))
			if start == nil {
				t.Fatal("no ExecStart")
			}
			if args := strings.Fields(start[1]); len(args) < 2 || args[0] != bin || args[1] != u.command {
				t.Fatalf("ExecStart=%s, want /usr/bin/%s %s", start[1], u.binName, u.command)
			}
			help, _ := execOutput(bin, u.command, "--help")
			has := func(flag string) bool {
				return regexp.MustCompile(`(?m)^\s+(-\w, )?--` + regexp.QuoteMeta(flag) + `[ \n]`).MatchString(help)
			}
			for _, f := range regexp.MustCompile(`\s--([a-z-]+)`).FindAllStringSubmatch(start[1], -1) {
				if !has(f[1]) {
					t.Errorf("ExecStart passes --%s, which %s %s does not have", f[1], u.binName, u.command)
				}
			}
			// The config file the comments show: "#   key: value" lines.
			keys := regexp.MustCompile(`(?m)^#   ([a-z-]+): \S`).FindAllStringSubmatch(text, -1)
			if len(keys) < 5 {
				t.Fatalf("the comments show %d settings of the config file, want the unit's settings", len(keys))
			}
			for _, k := range keys {
				if !has(k[1]) {
					t.Errorf("the config file sets %s:, which is no flag of %s %s", k[1], u.binName, u.command)
				}
			}
		})
	}
}

// TestReplicaUnitHardenedAsPatchd checks that the unit of a patchd replica
// keeps every sandboxing setting of patchd.service, and that both raise
// the open-file limit.
func TestReplicaUnitHardenedAsPatchd(t *testing.T) {
	settings := func(name string) map[string]string {
		data, err := os.ReadFile(filepath.Join("..", "..", "examples", "systemd", name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				out[k] = v
			}
		}
		return out
	}
	single, replica := settings("patchd"), settings("patchd-replica")
	hardening := regexp.MustCompile(`^(NoNewPrivileges|Protect.*|Private.*|Restrict.*|LockPersonality|MemoryDenyWriteExecute|SystemCallArchitectures|User|Group)$`)
	n := 0
	for k, v := range single {
		if !hardening.MatchString(k) {
			continue
		}
		n++
		if replica[k] != v {
			t.Errorf("patchd-replica.service: %s=%q, patchd.service has %q", k, replica[k], v)
		}
	}
	if n < 10 {
		t.Errorf("found only %d hardening settings in patchd.service: the test no longer reads it", n)
	}
	for name, unit := range map[string]map[string]string{"patchd": single, "patchd-replica": replica} {
		if limit, err := strconv.Atoi(unit["LimitNOFILE"]); err != nil || limit < 65536 {
			t.Errorf("%s.service: LimitNOFILE=%q, want at least 65536 (every agent holds a connection)", name, unit["LimitNOFILE"])
		}
	}
}

// execOutput runs bin with args and returns what it printed.
func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}
