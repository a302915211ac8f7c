package agent

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestAgentImportsOnlyTheWireTypesOfTheController keeps controller code out
// of patch-agent: of reconciler/..., only the wire types and the state
// vocabulary may be linked into the agent packages and the binary.
func TestAgentImportsOnlyTheWireTypesOfTheController(t *testing.T) {
	const module = "github.com/patchline/patchline/"
	allowed := map[string]bool{
		module + "reconciler/api/wire": true,
		module + "reconciler/state":    true,
	}
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
		if strings.HasPrefix(pkg, module+"reconciler/") && !allowed[pkg] {
			t.Errorf("agent packages depend on %s; only reconciler/api/wire and reconciler/state are allowed", pkg)
		}
	}
}
