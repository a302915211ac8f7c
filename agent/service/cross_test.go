package service

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestCrossBuilds builds and vets the service code, and patch-agent with
// it, for Windows and macOS (the service code of each is in files only
// that OS builds), and checks which service packages each links.
func TestCrossBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds take a while; not in -short")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the go tool is missing; CI needs it")
		}
		t.Skip("SKIPPING: the go tool is missing; the Windows and macOS builds are not checked")
	}
	const (
		pkg   = "github.com/patchline/patchline/agent/service"
		agent = "github.com/patchline/patchline/cmd/patch-agent"
	)
	winSvc := []string{"golang.org/x/sys/windows/svc", "golang.org/x/sys/windows/svc/mgr", "golang.org/x/sys/windows/svc/eventlog"}
	for _, goos := range []string{"windows", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(gotool, args...)
				cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("GOOS=%s go %s: %v\n%s", goos, strings.Join(args, " "), err, stderr.String())
				}
				return stdout.String()
			}
			run("build", "-o", os.DevNull, pkg, agent)
			run("vet", pkg)
			for _, root := range []string{pkg, agent} {
				deps := strings.Fields(run("list", "-deps", "-f", "{{.ImportPath}}", root))
				if !slices.Contains(deps, pkg) {
					t.Errorf("GOOS=%s: %s does not link %s", goos, root, pkg)
				}
				for _, p := range winSvc {
					if linked := slices.Contains(deps, p); linked != (goos == "windows") {
						t.Errorf("GOOS=%s: %s links %s: %v", goos, root, p, linked)
					}
				}
			}
		})
	}
}
