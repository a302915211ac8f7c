// Package golden compares what a test produces with a golden file, the
// reviewed expected output kept under the package's testdata/, and owns
// the one -update flag of the module's tests.
//
// To regenerate the golden files of a package after a deliberate change,
// run its tests with -update and review the diff before committing it:
//
//	go test ./internal/compliance -update
//
// Without -update a mismatch fails the test with a go-cmp diff (-want
// +got). An empty output stands for no golden file: -update removes the
// file, and a test that produces nothing passes only if there is none.
package golden

import (
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files with what the tests produce")

// Check compares got with the golden file at path, or, under -update,
// writes got to path (creating its directory).
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := write(path, got); err != nil {
			t.Fatalf("rewrite golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err != nil && len(got) > 0 {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; run go test -update if the change is right):\n%s", path, diff)
	}
}

// CheckJSON is Check of v as indented JSON (two spaces) with a final
// newline.
func CheckJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	Check(t, path, append(b, '\n'))
}

func write(path string, got []byte) error {
	if len(got) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, got, 0o644)
}
