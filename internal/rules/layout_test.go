package rules

import (
	"bufio"
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/patchline/patchline/"

// deps lists the packages pkgs link, with go list -deps.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list %v: %v\n%s", pkgs, err, stderr)
	}
	return strings.Fields(string(out))
}

// moduleRoot is the module's directory (this package is internal/rules).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestToolsDoNotLinkTheController: patchctl and the simulator decode what
// patchd answers through package protocol; they must not link the
// controller (package reconciler) to do so. Only the patchctl commands that
// really open a store file (backup, which checks the copy it downloaded;
// store migrate, which copies one into PostgreSQL) may link the SQLite
// store.
func TestToolsDoNotLinkTheController(t *testing.T) {
	for _, p := range []string{"./cmd/patchctl", "./internal/fleetsim"} {
		d := deps(t, module+strings.TrimPrefix(p, "./"))
		if slices.Contains(d, module+"reconciler") {
			t.Errorf("%s links %sreconciler (the controller)", p, module)
		}
	}
	if d := deps(t, module+"internal/fleetsim"); slices.Contains(d, module+"reconciler/store/sqlite") {
		t.Errorf("internal/fleetsim links the SQLite store")
	}
	allowed := map[string]bool{"backup.go": true, "store.go": true}
	dir := filepath.Join(moduleRoot(t), "cmd", "patchctl")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == module+"reconciler/store/sqlite" && !allowed[filepath.Base(f)] {
				t.Errorf("cmd/patchctl/%s imports the SQLite store; only commands that open a store file may", filepath.Base(f))
			}
		}
	}
}

// maxReconcilerFileLines bounds every .go file under reconciler/, tests
// included: a file a new maintainer cannot read in one sitting holds more
// than one idea.
const maxReconcilerFileLines = 450

func TestReconcilerFilesStayShort(t *testing.T) {
	root := filepath.Join(moduleRoot(t), "reconciler")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n++
		}
		if n > maxReconcilerFileLines {
			rel, _ := filepath.Rel(moduleRoot(t), path)
			t.Errorf("%s has %d lines, more than %d: split it along its seams", rel, n, maxReconcilerFileLines)
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}
