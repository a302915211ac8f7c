package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/releasekey"
	"github.com/patchline/patchline/protocol"
)

// TestRelease: patchctl release keygen writes a key pair; release sign
// writes a manifest of the release's binaries that verifies with the
// public key, and refuses a directory not named for a version.
func TestRelease(t *testing.T) {
	keys := t.TempDir()
	key := filepath.Join(keys, "release.key")
	if code, _, errOut := run(t, "release", "keygen", "--out", key); code != 0 {
		t.Fatalf("release keygen: exit %d: %s", code, errOut)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v, want mode 0600", fi, err)
	}
	if code, _, errOut := run(t, "release", "keygen", "--out", key); code == 0 || !strings.Contains(errOut, "never replaced") {
		t.Errorf("keygen over an existing key: exit %d: %s", code, errOut)
	}
	pub, err := releasekey.LoadPublic(key + releasekey.PublicSuffix)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "1.4.2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		protocol.ReleaseBinary("linux", "amd64"):   "linux binary",
		protocol.ReleaseBinary("windows", "amd64"): "windows binary",
		"NOTES.txt": "not a binary",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, errOut := run(t, "release", "sign", "--key", key, dir)
	if code != 0 {
		t.Fatalf("release sign: exit %d: %s", code, errOut)
	}
	if stdout != "release 1.4.2 signed: 2 binaries\n" {
		t.Errorf("output %q", stdout)
	}
	manifest, _ := os.ReadFile(filepath.Join(dir, protocol.ReleaseManifest))
	sig, _ := os.ReadFile(filepath.Join(dir, protocol.ReleaseSignature))
	rel, err := protocol.VerifyRelease(pub, manifest, sig)
	if err != nil {
		t.Fatalf("the signed release does not verify: %v", err)
	}
	if rel.Version != "1.4.2" || len(rel.Files) != 2 || rel.File(protocol.ReleaseBinary("windows", "amd64")).Size != int64(len("windows binary")) {
		t.Errorf("release %+v", rel)
	}

	bad := filepath.Join(t.TempDir(), "latest")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "release", "sign", "--key", key, bad); code == 0 || !strings.Contains(errOut, "named for the release's version") {
		t.Errorf("sign of a directory not named for a version: exit %d: %s", code, errOut)
	}
}
