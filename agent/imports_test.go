package agent

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestAgentImportsNothingOfTheController keeps controller code out of
// patch-agent: the agent packages and the binary share only package
// protocol with the controller, and link nothing under reconciler/.
func TestAgentImportsNothingOfTheController(t *testing.T) {
	const module = "github.com/patchline/patchline/"
	// -e: a package of agent/... that does not build must not hide the
	// imports of the others.
	out, err := exec.Command("go", "list", "-e", "-deps", "-f", "{{.ImportPath}}", "./...", "../cmd/patch-agent").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"agent") || !slices.Contains(deps, module+"cmd/patch-agent") {
		t.Fatalf("go list did not list the agent packages; got %d packages", len(deps))
	}
	for _, pkg := range deps {
		if pkg == module+"reconciler" || strings.HasPrefix(pkg, module+"reconciler/") {
			t.Errorf("agent packages depend on %s; they may share only package protocol with the controller", pkg)
		}
	}
}
