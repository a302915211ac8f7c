package reconciler

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// signingKeyFile is the job-signing key's file name in the data directory.
const signingKeyFile = "job-signing-key.pem"

// loadOrCreateKey reads the controller's ed25519 job-signing key from dir,
// generating it on first start. The key is written to a temporary file,
// synced and renamed, so a crash never leaves a half-written key that would
// make every enrolled agent refuse the controller's jobs.
func loadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, signingKeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PATCHLINE JOB SIGNING KEY" || len(block.Bytes) != ed25519.SeedSize {
			return nil, fmt.Errorf("job signing key %s is not a Patchline key: restore it from backup (agents pin it), or remove it and re-enroll every agent", path)
		}
		return ed25519.NewKeyFromSeed(block.Bytes), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read job signing key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate job signing key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PATCHLINE JOB SIGNING KEY", Bytes: priv.Seed()})
	if err := writeFileAtomic(path, out, 0o600); err != nil {
		return nil, fmt.Errorf("write job signing key: %w", err)
	}
	return priv, nil
}

// writeFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory so the rename itself is durable.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
