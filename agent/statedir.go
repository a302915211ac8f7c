package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/patchline/patchline/internal/atomicfile"
)

// Files in the state directory. Every file is written whole, by writeJSON,
// and is readable only by the agent's user: the identity holds the node key.
const (
	identityFile = "identity.json"
	seqFile      = "seq.json"
	// reportSeqFile holds the number of the last inventory report.
	reportSeqFile = "report-seq.json"
	journalDir    = "journal"
)

const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// identity is who the agent is to the controller. InstanceID and NodeKey are
// made once and stored before the first enroll request, so a retried or
// repeated enrollment presents the same pair and gets the same answer.
type identity struct {
	Client     string `json:"client"`
	InstanceID string `json:"instanceId"`
	NodeKey    string `json:"nodeKey"`
	// Endpoint and SigningKey are set once the controller has answered.
	Endpoint string `json:"endpoint,omitempty"`
	// SigningKey is the controller's job-signing public key, pinned at
	// enrollment: every later job must verify with it.
	SigningKey []byte `json:"signingKey,omitempty"`
}

func (id identity) enrolled() bool {
	return id.Endpoint != "" && len(id.SigningKey) == ed25519.PublicKeySize
}

// seqState is the highest job sequence number the agent has accepted.
type seqState struct {
	Seq int64 `json:"seq"`
}

// ensureDir creates dir (and parents) and makes it private to the agent.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	return nil
}

// removeFileDurable deletes dir/name and fsyncs dir so the removal survives
// a crash. A file already gone is not an error.
func removeFileDurable(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return atomicfile.SyncDir(dir)
}

// writeJSON stores v as indented JSON in dir/name, atomically: a crash
// leaves either the old or the new content, never a mix.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, name), append(b, '\n'), fileMode); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// readJSON loads dir/name into v. It reports found=false, and no error, when
// the file does not exist.
func readJSON(dir, name string, v any) (found bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("read %s: %w", filepath.Join(dir, name), err)
	}
	return true, nil
}
