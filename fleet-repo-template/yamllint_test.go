package fleettemplate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/gittest"
)

// runYamllint runs yamllint with its default configuration (-d default,
// whatever .yamllint or user configuration there is) on files, in dir,
// warnings counting as problems. It returns whether the files are clean, and the
// report.
func runYamllint(t *testing.T, dir string, files ...string) (bool, string) {
	t.Helper()
	bin, err := exec.LookPath("yamllint")
	if err != nil {
		gittest.SkipOrFail(t, "yamllint not installed (Debian package yamllint; make test installs it as root): %v", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"--strict", "-d", "default", "-f", "parsable"}, files...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run yamllint: %v", err)
	}
	return err == nil && out.Len() == 0, out.String()
}

// TestCIFilesPassYamllint runs yamllint, with its default configuration,
// on the CI files as `patchctl init` writes them: no error and no warning.
func TestCIFilesPassYamllint(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir); err != nil {
		t.Fatal(err)
	}
	if ok, out := runYamllint(t, dir, ciFiles...); !ok {
		t.Errorf("yamllint finds problems in the template's CI files:\n%s", out)
	}

	// The same run on a file with the mistakes it was clean of must
	// fail, or a broken yamllint would pass everything.
	t.Run("a long line and an unquoted on are caught", func(t *testing.T) {
		dir := t.TempDir()
		bad := "---\non: pull_request\njobs:\n  plan:\n    runs-on: ubuntu-latest\n    steps:\n      - run: " + strings.Repeat("echo long; ", 10) + "\n"
		if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		ok, out := runYamllint(t, dir, "bad.yml")
		if ok || !strings.Contains(out, "(line-length)") || !strings.Contains(out, "(truthy)") {
			t.Errorf("yamllint passed a workflow with a 120-column line and an unquoted on:\n%s", out)
		}
	})
}
