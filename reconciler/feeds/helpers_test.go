package feeds

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// feedDir is the directory of publisher-format excerpts (testdata/README.md).
const feedDir = "testdata/feeds"

// readTestdata reads a file of testdata/feeds.
func readTestdata(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(feedDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// gzipped compresses data as the publishers do.
func gzipped(t testing.TB, data string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// copyFeeds copies testdata/feeds into a fresh directory the test may
// change.
func copyFeeds(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(feedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		writeFile(t, dir, e.Name(), readTestdata(t, e.Name()))
	}
	return dir
}

// writeFile writes a file and moves its modification time a second on
// from whatever it was, so a Reload sees the change even on a file system
// with coarse timestamps.
func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	path := filepath.Join(dir, name)
	var mtime time.Time
	if info, err := os.Stat(path); err == nil {
		mtime = info.ModTime().Add(time.Second)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// parseError requires err to be a *ParseError and returns it.
func parseError(t *testing.T, err error) *ParseError {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	return pe
}

// refusal is one way a feed file can be broken, for the table-driven
// refusal tests: the mutation, and what the error must say.
type refusal struct {
	name   string
	mutate func(t *testing.T, s string) string
	// path is the JSON path the error must name ("" to not check it),
	// line the CSV line (0 to not check it).
	path string
	line int
	// want is a piece of the error message.
	want string
}

// checkRefusal checks that err refuses a file as r says.
func checkRefusal(t *testing.T, r refusal, file string, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted, want refused")
	}
	pe := parseError(t, err)
	if pe.File != file {
		t.Errorf("error names file %q, want %q", pe.File, file)
	}
	if r.path != "" && pe.Path != r.path {
		t.Errorf("error path %q, want %q (%v)", pe.Path, r.path, err)
	}
	if r.line != 0 && pe.Line != r.line {
		t.Errorf("error line %d, want %d (%v)", pe.Line, r.line, err)
	}
	if pe.Line == 0 && pe.Offset < 0 {
		t.Errorf("error has neither a line nor an offset: %v", err)
	}
	if !strings.Contains(err.Error(), r.want) {
		t.Errorf("error %q does not say %q", err, r.want)
	}
}

// replaceOnce replaces the first old in s by new, failing the test if old
// is not there (a mutation that silently does nothing tests nothing).
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("mutation: %q not found", old)
	}
	return strings.Replace(s, old, new, 1)
}
