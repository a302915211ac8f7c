// Package releasekey is the files of the agent release key, which signs
// agent releases (`patchctl release sign`) and which agents pin
// (`patch-agent --release-key FILE`). It is not the job-signing key: a
// controller never holds it, so a controller that is broken into cannot
// make agents run another binary.
//
// The private key is an ed25519 seed in a PEM block of type "PATCHLINE
// RELEASE SIGNING KEY", readable by its owner only; the public key, FILE.pub
// beside it, a PEM block of type "PATCHLINE RELEASE PUBLIC KEY".
package releasekey

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/patchline/patchline/internal/atomicfile"
)

const (
	privateType = "PATCHLINE RELEASE SIGNING KEY"
	publicType  = "PATCHLINE RELEASE PUBLIC KEY"
)

// PublicSuffix is added to the private key's file name for the public
// key's.
const PublicSuffix = ".pub"

// Generate makes a new release key and writes it to path (mode 0600) and
// its public half to path.pub (mode 0644). Neither file may exist: a key
// agents pin is never replaced.
func Generate(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate release key: %w", err)
	}
	for _, p := range []string{path, path + PublicSuffix} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s: %w: a release key is never replaced (agents pin it); choose another file", p, fs.ErrExist)
		}
	}
	if err := atomicfile.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: privateType, Bytes: priv.Seed()}), 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteNew(path+PublicSuffix, pem.EncodeToMemory(&pem.Block{Type: publicType, Bytes: pub}), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// LoadPrivate reads the release signing key at path; a file group or
// others may read is refused.
func LoadPrivate(path string) (ed25519.PrivateKey, error) {
	data, mode, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	if perm := mode.Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("release key %s: mode %04o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != privateType || len(block.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("release key %s: not a Patchline release signing key (make one with patchctl release keygen --out FILE)", path)
	}
	return ed25519.NewKeyFromSeed(block.Bytes), nil
}

// ErrNotPublicKey is what LoadPublic's error wraps for a file that holds
// no release public key.
var ErrNotPublicKey = errors.New("not a Patchline release public key")

// LoadPublic reads a release public key (the .pub file) at path.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	data, _, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("release public key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != publicType || len(block.Bytes) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("release public key %s: %w (it is the .pub file patchctl release keygen writes)", path, ErrNotPublicKey)
	}
	return ed25519.PublicKey(block.Bytes), nil
}

func read(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	// A key file is a few hundred bytes; more is not one.
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	return data, fi.Mode(), err
}
