package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.json")
	for _, content := range []string{`{"endpoint": ""}`, `{"endpoint": "acme-ws-001-7be5"}`} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != content {
			t.Errorf("file holds %q, want %q", got, content)
		}
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("mode %04o, want 0600", perm)
		}
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only the file", names)
	}
}

func TestWriteFileFailsInAMissingDirectory(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "nope", "seq.json"), []byte("{}"), 0o600); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}

// TestReadersSeeOldOrNew: while a file is replaced again and again, a
// reader only ever finds one whole version, never an empty or a partial
// file (which writing it in place would show).
func TestReadersSeeOldOrNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	versions := [][]byte{bytes.Repeat([]byte("a"), 256<<10), bytes.Repeat([]byte("b"), 128<<10)}
	if err := WriteFile(path, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range 200 {
			if err := WriteFile(path, versions[i%2], 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for reads := 0; ; reads++ {
		select {
		case <-done:
			wg.Wait()
			if reads == 0 {
				t.Fatal("no read overlapped the writes")
			}
			return
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, versions[0]) && !bytes.Equal(b, versions[1]) {
			t.Fatalf("read %d bytes that are neither version", len(b))
		}
	}
}

// TestCreateCommit: the new content can be read back by its temporary
// name before it replaces the file, and the old file stays in place until
// Commit.
func TestCreateCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "patchline.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Discard()
	if _, err := f.WriteString("new"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(f.Name()), ".patchline.db.tmp-") || filepath.Dir(f.Name()) != dir {
		t.Errorf("temporary file %s, want a hidden one next to the target", f.Name())
	}
	if got := readFile(t, f.Name()); got != "new" {
		t.Errorf("temporary file holds %q, want %q", got, "new")
	}
	if got := readFile(t, path); got != "old" {
		t.Errorf("before Commit the file holds %q, want %q", got, "old")
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Discard() // after Commit, a no-op
	if got := readFile(t, path); got != "new" {
		t.Errorf("after Commit the file holds %q, want %q", got, "new")
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only the file", names)
	}
}

func TestDiscardLeavesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("half a download"); err != nil {
		t.Fatal(err)
	}
	f.Discard()
	f.Discard()
	if got := readFile(t, path); got != "old" {
		t.Errorf("after Discard the file holds %q, want %q", got, "old")
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only the file", names)
	}
}

// TestFailedCommitLeavesNothing: a commit that cannot rename (the target
// is a directory) reports it and leaves no temporary file.
func TestFailedCommitLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := os.MkdirAll(filepath.Join(path, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit over a directory succeeded")
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "state.json" {
		t.Errorf("directory holds %q, want only the directory in the way", names)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if err := SyncDir(missing); err == nil || !strings.Contains(err.Error(), "sync dir "+missing) {
		t.Errorf("SyncDir of a missing directory: %v, want an error naming it", err)
	}
}

func TestWriteNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	if err := WriteNew(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("second\n"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second WriteNew: %v, want an error wrapping fs.ErrExist", err)
	}
	if got := readFile(t, path); got != "first\n" {
		t.Errorf("content %q, want the first write's", got)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v, want the one file", got)
	}
}
