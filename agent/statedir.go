package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Files in the state directory. Every file is written with writeFileAtomic
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

// writeFileAtomic replaces dir/name with data so that a crash leaves either
// the old or the new content, never a mix: write a temp file in the same
// directory, fsync it, rename it over the target, fsync the directory so the
// rename itself is durable.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(fileMode); err != nil && runtime.GOOS != "windows" {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

// removeFileDurable deletes dir/name and fsyncs dir so the removal survives
// a crash. A file already gone is not an error.
func removeFileDurable(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return syncDir(dir)
}

// syncDir makes renames and removals in dir durable. Windows cannot fsync a
// directory handle; NTFS journals the metadata change itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// writeJSON stores v as indented JSON in dir/name, atomically.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return writeFileAtomic(dir, name, append(b, '\n'))
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
