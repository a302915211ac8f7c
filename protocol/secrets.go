package protocol

import (
	"fmt"
	"os"
	"runtime"
)

// SecretsFile is the secrets file patchd reads (--secrets), as JSON:
//
//	{"adminToken": "...", "webhookSecret": "...", "enrollment": {"acme": "...", "globex": "..."}}
//
// The admin token and enrollment secrets may be given pre-hashed as
// "sha256:<64 hex digits>"; the webhook secret may not, since it is an HMAC
// key. The controller's API checks the values (package api); the simulator
// and the test harnesses write and read the same shape.
type SecretsFile struct {
	AdminToken    string            `json:"adminToken"`
	WebhookSecret string            `json:"webhookSecret"`
	Enrollment    map[string]string `json:"enrollment"`
}

// ReadSecretsFile reads and decodes the secrets file at path. The file must
// not be readable by group or others, must hold one JSON object with only
// the fields above, and must give an admin token.
func ReadSecretsFile(path string) (*SecretsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	// Windows reports made-up permission bits; there the file's ACL is the
	// operator's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("secrets file %s: mode %04o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	var sf SecretsFile
	if err := DecodeStrict(f, &sf); err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", path, err)
	}
	if sf.AdminToken == "" {
		return nil, fmt.Errorf("secrets file %s: adminToken: missing", path)
	}
	return &sf, nil
}
