// Package signingkey is the file the controller's job-signing key lives
// in: an ed25519 seed in a PEM block of type "PATCHLINE JOB SIGNING KEY",
// readable by its owner only. patchd generates one into its data
// directory on first start (the embedded store), or reads the one given
// with --signing-key (PostgreSQL, where every replica signs with the same
// key); `patchctl keys generate` writes such a file. Agents pin the key's
// public half at enrollment, so the file is never replaced.
package signingkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/patchline/patchline/internal/atomicfile"
)

// pemType is the type of the key file's PEM block.
const pemType = "PATCHLINE JOB SIGNING KEY"

// Generate returns a new job-signing key.
func Generate() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate job-signing key: %w", err)
	}
	return priv, nil
}

// Encode is the key file's content for key.
func Encode(key ed25519.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: key.Seed()})
}

// ErrNotAKey is what Parse's error wraps when the data is not a key file.
var ErrNotAKey = errors.New("not a Patchline job-signing key")

// Parse reads a key file's content.
func Parse(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemType || len(block.Bytes) != ed25519.SeedSize {
		return nil, ErrNotAKey
	}
	return ed25519.NewKeyFromSeed(block.Bytes), nil
}

// Load reads the key file at path. A file that group or others may read
// is refused (anyone who reads it can sign jobs every agent runs), as is
// one that holds no key.
func Load(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("job-signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("job-signing key: %w", err)
	}
	// Windows reports made-up permission bits; there the file's ACL is
	// the operator's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("job-signing key %s: mode %04o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	// A key file is a few hundred bytes; more is not one.
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("job-signing key %s: %w", path, err)
	}
	key, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("job-signing key %s: %w (make one with patchctl keys generate --out FILE)", path, err)
	}
	return key, nil
}

// WriteNew writes key to a new file at path, readable by its owner only.
// A file already at path is never replaced (it may be the key agents
// pin): WriteNew fails with an error that wraps fs.ErrExist. The file
// appears whole or not at all.
func WriteNew(path string, key ed25519.PrivateKey) error {
	if err := atomicfile.WriteNew(path, Encode(key), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w: a job-signing key is never replaced (agents pin it); choose another file", path, fs.ErrExist)
		}
		return err
	}
	return nil
}

// Fingerprint names a public key in messages: "SHA256:" and the unpadded
// base64 of its SHA-256, as ssh-keygen -l shows keys.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
