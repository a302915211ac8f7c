package agentrelease

import (
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/releasekey"
	"github.com/patchline/patchline/protocol"
)

// release lays out a signed release of version in root and returns its
// directory.
func release(t *testing.T, root, version string) string {
	t.Helper()
	dir := filepath.Join(root, version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, protocol.ReleaseBinary("linux", "amd64")), []byte("agent binary"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := releasekey.Sign(key, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheck(t *testing.T) {
	bin := protocol.ReleaseBinary("linux", "amd64")
	for _, tc := range []struct {
		name    string
		version string
		change  func(t *testing.T, dir string)
		want    string // "" for offered
	}{
		{name: "a signed release is offered", version: "1.4.2"},
		{name: "no directory", version: "1.4.3", want: "has no release.json"},
		{name: "unsigned", version: "1.4.2", want: "is not signed",
			change: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, protocol.ReleaseSignature)) }},
		{name: "a binary changed size since signing", version: "1.4.2", want: "the manifest says 12",
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, bin), "a longer agent binary") }},
		{name: "a binary gone", version: "1.4.2", want: "no such file",
			change: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, bin)) }},
		{name: "not a release version", version: "../etc", want: "MAJOR.MINOR.PATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := release(t, root, "1.4.2")
			if tc.change != nil {
				tc.change(t, dir)
			}
			d, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			err = d.Check(tc.version)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v, want offered", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestOpenFileServesOnlyReleaseFiles(t *testing.T) {
	root := t.TempDir()
	dir := release(t, root, "1.4.2")
	write(t, filepath.Join(dir, "notes.txt"), "not listed")
	write(t, filepath.Join(root, "secret"), "outside any release")
	if err := os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "patch-agent_linux_arm64")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range []string{protocol.ReleaseManifest, protocol.ReleaseSignature, protocol.ReleaseBinary("linux", "amd64")} {
		f, err := d.OpenFile("1.4.2", name)
		if err != nil {
			t.Errorf("OpenFile(%q): %v", name, err)
			continue
		}
		if _, err := io.ReadAll(f); err != nil {
			t.Error(err)
		}
		f.Close()
	}
	for _, tc := range []struct{ version, name string }{
		{"1.4.2", "notes.txt"},
		{"1.4.2", "patch-agent_linux_arm64"},
		{"1.4.2", "../secret"},
		{"1.4.2", ".."},
		{"..", "secret"},
		{"1.4.9", protocol.ReleaseManifest},
	} {
		if f, err := d.OpenFile(tc.version, tc.name); !errors.Is(err, ErrNotServed) {
			if f != nil {
				f.Close()
			}
			t.Errorf("OpenFile(%q, %q): %v, want ErrNotServed", tc.version, tc.name, err)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
