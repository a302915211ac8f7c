package protocol

// Agent self-update: the update the controller plans when policy asks for
// an agent version (agent: version: "1.4.2"), and the signed release a
// controller serves for it.
//
// An agent upgrade rolls out like a patch: the planner gives every
// endpoint whose policy names an agent version the update
// AgentUpdateID(version), of source SourcePatchline, installed when the
// endpoint's agent reports that version. Endpoints never report this
// source themselves; the agent API refuses it in a report.

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// SourcePatchline is the source of the agent's own update.
const SourcePatchline = "patchline"

// AgentUpdateName is the name of the agent's own update.
const AgentUpdateName = "patch-agent"

// agentUpdatePrefix starts the id of every agent update. The "/" keeps it
// apart from an apt package named patch-agent ("patch-agent@1.4.2").
const agentUpdatePrefix = SourcePatchline + "/" + AgentUpdateName + "@"

// AgentUpdateID is the id of the update that brings an agent to version.
func AgentUpdateID(version string) string { return agentUpdatePrefix + version }

// AgentUpdateVersion returns the version an agent update id names, and
// whether id is an agent update's.
func AgentUpdateVersion(id string) (string, bool) {
	return strings.CutPrefix(id, agentUpdatePrefix)
}

// AgentUpdate is the update that brings an agent reporting running to
// version: installed when running is version.
func AgentUpdate(version, running string) *Update {
	return &Update{
		ID: AgentUpdateID(version), Source: SourcePatchline, Name: AgentUpdateName, Version: version,
		Category: "feature", Installed: running == version,
	}
}

// Semver is a release version "MAJOR.MINOR.PATCH", the form agent
// versions take in policy and releases.
type Semver [3]uint64

// ParseSemver parses "1.4.2" (a leading "v" is allowed). Pre-release and
// build suffixes are refused: an agent release is a plain version, so two
// releases are always ordered.
func ParseSemver(s string) (Semver, error) {
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	if len(parts) != 3 {
		return Semver{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, e.g. 1.4.2", s)
	}
	var v Semver
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return Semver{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH of decimal numbers, e.g. 1.4.2", s)
		}
		v[i] = n
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than w.
func (v Semver) Compare(w Semver) int {
	for i := range v {
		switch {
		case v[i] < w[i]:
			return -1
		case v[i] > w[i]:
			return 1
		}
	}
	return 0
}

func (v Semver) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// The routes an agent fetches a release from, with its node key, like its
// other calls: ReleaseRoute(version, name) for a file of the release
// directory (ReleaseManifest, ReleaseSignature, a binary).
const (
	ReleasesPath     = "/v1/agent-releases/"
	ReleaseManifest  = "release.json"
	ReleaseSignature = "release.json.sig"
)

// ReleaseRoute is the path of file name of release version.
func ReleaseRoute(version, name string) string { return ReleasesPath + version + "/" + name }

// ReleaseBinary is the file name of the agent binary for goos and goarch
// in a release: patch-agent_linux_amd64, patch-agent_windows_amd64.exe.
func ReleaseBinary(goos, goarch string) string {
	name := AgentUpdateName + "_" + goos + "_" + goarch
	if goos == "windows" {
		name += ".exe"
	}
	return name
}

// Release is release.json, the manifest of an agent release directory,
// signed (release.json.sig, ed25519 over the file's exact bytes) by the
// release key the agents pin.
type Release struct {
	Version string        `json:"version"`
	Files   []ReleaseFile `json:"files"`
}

// ReleaseFile is one binary of a release.
type ReleaseFile struct {
	Name string `json:"name"`
	// SHA256 is the lower-case hex SHA-256 of the file.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// File returns the entry named name, or nil.
func (r *Release) File(name string) *ReleaseFile {
	for i := range r.Files {
		if r.Files[i].Name == name {
			return &r.Files[i]
		}
	}
	return nil
}

// VerifyRelease checks sig over manifest with key and decodes the
// manifest; it fails unless the signature is good, the version is a
// Semver and every file entry is well formed (a plain file name, a
// SHA-256, a size).
func VerifyRelease(key ed25519.PublicKey, manifest, sig []byte) (*Release, error) {
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("release key: want %d bytes, got %d", ed25519.PublicKeySize, len(key))
	}
	if !ed25519.Verify(key, manifest, sig) {
		return nil, fmt.Errorf("%s: the signature does not verify with the release key (signed by another key, or changed since)", ReleaseManifest)
	}
	var r Release
	if err := json.Unmarshal(manifest, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", ReleaseManifest, err)
	}
	if _, err := ParseSemver(r.Version); err != nil {
		return nil, fmt.Errorf("%s: %w", ReleaseManifest, err)
	}
	for i, f := range r.Files {
		if !ValidReleaseFileName(f.Name) || len(f.SHA256) != 64 || strings.Trim(f.SHA256, "0123456789abcdef") != "" || f.Size <= 0 {
			return nil, fmt.Errorf("%s: files[%d]: want a plain file name, a lower-case hex sha256 and a size above 0", ReleaseManifest, i)
		}
	}
	return &r, nil
}

// ValidReleaseFileName says whether name may be a file of a release: a
// plain name of letters, digits, '.', '_' and '-' that is not "." or "..".
func ValidReleaseFileName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 128 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
