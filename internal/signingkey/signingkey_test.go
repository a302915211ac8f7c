package signingkey

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestWriteNewThenLoad: a new key file is its owner's only, loads back as
// the same key, and is never replaced.
func TestWriteNewThenLoad(t *testing.T) {
	key, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "job-signing-key.pem")
	if err := WriteNew(path, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(got) {
		t.Error("the key loaded is not the key written")
	}
	before, _ := os.ReadFile(path)
	other, _ := Generate()
	if err := WriteNew(path, other); !errors.Is(err, fs.ErrExist) {
		t.Errorf("writing over a key: %v, want an error wrapping fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the key file changed")
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

// TestLoadRefuses: Load names the file and says what to do.
func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	key, _ := Generate()
	write := func(name string, data []byte, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"a missing file", filepath.Join(dir, "missing.pem"), "no such file"},
		{"not a key", write("junk.pem", []byte("hello"), 0o600), "not a Patchline job-signing key (make one with patchctl keys generate"},
		{"another PEM block", write("cert.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600), "not a Patchline job-signing key"},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, struct {
			name string
			path string
			want string
		}{"readable by others", write("open.pem", Encode(key), 0o644), "mode 0644 lets group or others read it; run chmod 600"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Load: %v, want an error naming %s and mentioning %q", err, tt.path, tt.want)
			}
		})
	}
}

// TestFingerprint: a key's fingerprint is stable, tells keys apart and
// reads like ssh-keygen's.
func TestFingerprint(t *testing.T) {
	key, _ := Generate()
	other, _ := Generate()
	pub, otherPub := key.Public().(ed25519.PublicKey), other.Public().(ed25519.PublicKey)
	fp := Fingerprint(pub)
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q, want SHA256: and 43 base64 characters", fp)
	}
	if fp != Fingerprint(pub) || fp == Fingerprint(otherPub) {
		t.Errorf("fingerprints %q, %q, %q: want the same key's equal and another's different", fp, Fingerprint(pub), Fingerprint(otherPub))
	}
}
