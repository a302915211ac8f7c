// Package agentrelease is the controller's side of agent self-update: the
// release directory patchd serves agent binaries from (--agent-releases
// DIR). Its layout is
//
//	DIR/<version>/release.json       the manifest (protocol.Release)
//	DIR/<version>/release.json.sig   ed25519 signature of release.json
//	DIR/<version>/patch-agent_<goos>_<goarch>[.exe]
//
// as `patchctl release sign` writes it. The controller never holds the
// release key: it offers a version only when its directory has a
// manifest of that version, a signature and every file the manifest
// lists at its size; the agent verifies the signature and the hashes.
// Only the files a manifest lists (and the manifest and its signature)
// are served, and nothing outside DIR: paths go through os.Root.
package agentrelease

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	"github.com/patchline/patchline/protocol"
)

// checkAgain is how long a version's check is trusted before the
// directory is looked at again: a release directory that appears or is
// fixed is offered within it, without a restart.
const checkAgain = 30 * time.Second

// Dir is a release directory.
type Dir struct {
	root *os.Root
	path string
	now  func() time.Time

	// mu guards checked, the last check of each version.
	mu      sync.Mutex
	checked map[string]check
}

type check struct {
	at  time.Time
	err error
}

// Open opens the release directory at dir, which must exist.
func Open(dir string) (*Dir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("agent releases: %w", err)
	}
	return &Dir{root: root, path: dir, now: time.Now, checked: map[string]check{}}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Check says whether version can be offered to agents: nil, or what is
// missing, in words that say what to run. Results are kept for a while
// (checkAgain), since the planner asks for every endpoint.
func (d *Dir) Check(version string) error {
	d.mu.Lock()
	c, ok := d.checked[version]
	d.mu.Unlock()
	if ok && d.now().Sub(c.at) < checkAgain {
		return c.err
	}
	err := d.check(version)
	d.mu.Lock()
	d.checked[version] = check{at: d.now(), err: err}
	d.mu.Unlock()
	return err
}

func (d *Dir) check(version string) error {
	if _, err := protocol.ParseSemver(version); err != nil {
		return err
	}
	where := path.Join(d.path, version)
	manifest, err := d.root.ReadFile(path.Join(version, protocol.ReleaseManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no %s: put the release's binaries there and run patchctl release sign --key KEY %s", where, protocol.ReleaseManifest, where)
	}
	if err != nil {
		return err
	}
	sig, err := d.root.ReadFile(path.Join(version, protocol.ReleaseSignature))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not signed (no %s): run patchctl release sign --key KEY %s", where, protocol.ReleaseSignature, where)
	}
	if err != nil {
		return err
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%s/%s: not an ed25519 signature (%d bytes): sign the release again", where, protocol.ReleaseSignature, len(sig))
	}
	var r protocol.Release
	if err := json.Unmarshal(manifest, &r); err != nil {
		return fmt.Errorf("%s/%s: %w", where, protocol.ReleaseManifest, err)
	}
	if r.Version != version {
		return fmt.Errorf("%s/%s: names version %q, not the directory's %q", where, protocol.ReleaseManifest, r.Version, version)
	}
	if len(r.Files) == 0 {
		return fmt.Errorf("%s/%s: lists no binary", where, protocol.ReleaseManifest)
	}
	for _, f := range r.Files {
		if !protocol.ValidReleaseFileName(f.Name) {
			return fmt.Errorf("%s/%s: bad file name %q", where, protocol.ReleaseManifest, f.Name)
		}
		st, err := d.root.Stat(path.Join(version, f.Name))
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if st.Size() != f.Size {
			return fmt.Errorf("%s/%s: %d bytes, the manifest says %d: sign the release again", where, f.Name, st.Size(), f.Size)
		}
	}
	return nil
}

// ErrNotServed is the error of OpenFile for a file no release offers.
var ErrNotServed = errors.New("not an agent release file")

// OpenFile opens file name of release version for an agent to download:
// the manifest, its signature or a binary the manifest lists, of a
// version Check accepts. Anything else is ErrNotServed.
func (d *Dir) OpenFile(version, name string) (*os.File, error) {
	if !protocol.ValidReleaseFileName(name) {
		return nil, ErrNotServed
	}
	if err := d.Check(version); err != nil {
		return nil, fmt.Errorf("%w: release %s: %v", ErrNotServed, version, err)
	}
	if name != protocol.ReleaseManifest && name != protocol.ReleaseSignature {
		manifest, err := d.root.ReadFile(path.Join(version, protocol.ReleaseManifest))
		if err != nil {
			return nil, err
		}
		var r protocol.Release
		if err := json.Unmarshal(manifest, &r); err != nil || r.File(name) == nil {
			return nil, ErrNotServed
		}
	}
	return d.root.Open(path.Join(version, name))
}
