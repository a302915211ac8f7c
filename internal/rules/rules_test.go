// Package rules holds tests of rules that span the whole module: the ones
// STYLE.md says matter enough to be tests rather than review comments.
package rules

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
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
	pkgs := goList(t, "github.com/patchline/patchline/...")
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// goList runs go list -json with args and decodes the packages it lists.
func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
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

// TestPureDomainLinksNoIO: the schema's types and the planner are pure
// functions of their inputs, so `patchctl plan` is trustworthy in a PR and
// whatever imports them stays small. Nothing they link may read Git, serve
// or call HTTP, open a database or evaluate CUE: that is the job of
// reconciler/source, reconciler/api, the stores and schema/loader.
func TestPureDomainLinksNoIO(t *testing.T) {
	roots := []string{
		"github.com/patchline/patchline/schema",
		"github.com/patchline/patchline/reconciler/plan",
	}
	for _, root := range roots {
		imports := make(map[string][]string)
		for _, p := range goList(t, "-deps", root) {
			imports[p.ImportPath] = p.Imports
		}
		if _, ok := imports[root]; !ok {
			t.Fatalf("go list -deps %s did not list %s", root, root)
		}
		// A breadth-first walk records how each package is first reached,
		// so a failure shows the shortest import chain that pulls it in.
		via := map[string]string{root: ""}
		queue := []string{root}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			for _, imp := range imports[p] {
				if _, seen := via[imp]; !seen {
					via[imp] = p
					queue = append(queue, imp)
				}
			}
		}
		var bad []string
		for p := range via {
			// Report where the closure enters a forbidden package, not
			// every package behind it.
			if doesIO(p) && !doesIO(via[p]) {
				bad = append(bad, p)
			}
		}
		slices.Sort(bad)
		for _, p := range bad {
			chain := []string{p}
			for q := via[p]; q != ""; q = via[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			t.Errorf("%s links %s, which does I/O or evaluates CUE: %s", root, p, strings.Join(chain, " → "))
		}
	}
}

// doesIO says whether a package is one the pure domain must not link: Git,
// HTTP, SQL or CUE.
func doesIO(path string) bool {
	for _, prefix := range []string{"github.com/go-git", "cuelang.org/go", "net/http", "database/sql"} {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return true
		}
	}
	return false
}
