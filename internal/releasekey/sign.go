package releasekey

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

// Sign writes the manifest of the release in dir, whose base name is its
// version ("1.4.2"), and its signature by key: release.json lists every
// agent binary in dir (patch-agent_<goos>_<goarch>[.exe]) with its
// SHA-256 and size, and release.json.sig is key's signature over it. A
// signature already there is replaced, the manifest first, so an agent
// never gets a new manifest with an old signature that verifies.
func Sign(key ed25519.PrivateKey, dir string) (*protocol.Release, error) {
	version := filepath.Base(filepath.Clean(dir))
	if _, err := protocol.ParseSemver(version); err != nil {
		return nil, fmt.Errorf("%s: the directory is named for the release's version: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	r := &protocol.Release{Version: version, Files: []protocol.ReleaseFile{}}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, protocol.AgentUpdateName+"_") {
			continue
		}
		if !protocol.ValidReleaseFileName(name) {
			return nil, fmt.Errorf("%s: %q is not a plain file name (letters, digits, '.', '_', '-')", dir, name)
		}
		f, err := fileEntry(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		r.Files = append(r.Files, f)
	}
	if len(r.Files) == 0 {
		return nil, fmt.Errorf("%s: no agent binary (patch-agent_<goos>_<goarch>, e.g. %s) to sign", dir, protocol.ReleaseBinary("linux", "amd64"))
	}
	slices.SortFunc(r.Files, func(a, b protocol.ReleaseFile) int { return strings.Compare(a.Name, b.Name) })
	manifest, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	manifest = append(manifest, '\n')
	sig := ed25519.Sign(key, manifest)
	// The old signature goes first: between the two writes the release is
	// unsigned (not offered), never signed over the wrong manifest.
	if err := os.Remove(filepath.Join(dir, protocol.ReleaseSignature)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, protocol.ReleaseManifest), manifest, 0o644); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, protocol.ReleaseSignature), sig, 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

func fileEntry(path string) (protocol.ReleaseFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return protocol.ReleaseFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return protocol.ReleaseFile{}, fmt.Errorf("%s: %w", path, err)
	}
	return protocol.ReleaseFile{Name: filepath.Base(path), SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
