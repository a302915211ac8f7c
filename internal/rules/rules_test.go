// Package rules holds tests of rules that span the whole module: the ones
// STYLE.md says matter enough to be tests rather than review comments.
package rules

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	GoFiles    []string
	Imports    []string
}

// packages lists the module's packages with go list.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "github.com/patchline/patchline/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// TestEveryPackageSaysWhatItIsFor: a new engineer should find where a
// behaviour lives from the package docs alone.
func TestEveryPackageSaysWhatItIsFor(t *testing.T) {
	for _, p := range packages(t) {
		if len(p.GoFiles) == 0 {
			continue // test-only packages such as this one
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}

// TestNothingImportsCommands: cmd/ holds thin mains; logic lives in
// packages the mains and the tests share.
func TestNothingImportsCommands(t *testing.T) {
	for _, p := range packages(t) {
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/patchline/patchline/cmd/") {
				t.Errorf("%s imports %s", p.ImportPath, imp)
			}
		}
	}
}

// TestSchemaAndStateStayLeaves: the vocabulary packages import nothing of
// the controller or the agent, so every other package can use them.
func TestSchemaAndStateStayLeaves(t *testing.T) {
	leaves := map[string]bool{
		"github.com/patchline/patchline/schema":   true,
		"github.com/patchline/patchline/protocol": true,
	}
	for _, p := range packages(t) {
		if !leaves[p.ImportPath] {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/patchline/patchline/") {
				t.Errorf("%s imports %s; it must stay a leaf", p.ImportPath, imp)
			}
		}
	}
}
