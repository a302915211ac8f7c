package reconciler

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/internal/signingkey"
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
		key, err := signingkey.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("job signing key %s is not a Patchline key: restore it from backup (agents pin it), or remove it and re-enroll every agent", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read job signing key: %w", err)
	}
	priv, err := signingkey.Generate()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, signingkey.Encode(priv), 0o600); err != nil {
		return nil, fmt.Errorf("write job signing key: %w", err)
	}
	return priv, nil
}
