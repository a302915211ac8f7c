package releasekey

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/protocol"
)

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.key")
	pub, err := Generate(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadPublic(path + PublicSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(pub) || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatal("the files do not hold one key pair")
	}
	if _, err := LoadPublic(path); !errors.Is(err, ErrNotPublicKey) {
		t.Errorf("LoadPublic of the private key: %v, want ErrNotPublicKey", err)
	}
	if _, err := Generate(path); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Errorf("Generate over an existing key: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivate(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadPrivate of a group-readable key: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.key")
	if _, err := Generate(path); err != nil {
		t.Fatal(err)
	}
	key, err := LoadPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		dir   string
		files []string
		want  string
	}{
		{"a directory not named for a version", "latest", []string{protocol.ReleaseBinary("linux", "amd64")}, "named for the release's version"},
		{"no binary", "1.4.2", []string{"README.txt"}, "no agent binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Sign(key, dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Sign: %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, protocol.ReleaseSignature)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused release has a signature: %v", err)
			}
		})
	}
}
