package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

// hashPrefix marks a secret given pre-hashed in the secrets file:
// "sha256:" and 64 hex digits of the SHA-256 of the secret.
const hashPrefix = "sha256:"

// Secrets are the credentials the API checks: the admin token, the
// per-client enrollment secrets and the webhook secret. Tokens and
// enrollment secrets are kept only as SHA-256 hashes, compared in constant
// time.
type Secrets struct {
	admin [sha256.Size]byte
	// enrollment maps a client id to the hash of its enrollment secret.
	enrollment map[string][sha256.Size]byte
	// webhook is kept raw: it is the HMAC key webhook signatures are
	// computed with, and an HMAC cannot be checked against a hash of its key.
	webhook []byte
}

// secretsFile is the JSON layout of the secrets file.
type secretsFile struct {
	AdminToken    string            `json:"adminToken"`
	WebhookSecret string            `json:"webhookSecret"`
	Enrollment    map[string]string `json:"enrollment"`
}

// LoadSecrets reads the secrets file at path:
//
//	{"adminToken": "...", "webhookSecret": "...", "enrollment": {"acme": "...", "globex": "..."}}
//
// The admin token and enrollment secrets may be given pre-hashed as
// "sha256:<64 hex digits>"; the webhook secret may not, since it is an HMAC
// key. The admin token is required; an empty webhook secret makes every
// webhook fail to verify, and a client without an enrollment secret cannot
// enroll endpoints. The file must not be readable by group or others.
func LoadSecrets(path string) (*Secrets, error) {
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
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", path, err)
	}
	s, err := parseSecrets(data)
	if err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", path, err)
	}
	return s, nil
}

func parseSecrets(data []byte) (*Secrets, error) {
	var sf secretsFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, jsonProblem(err, dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("offset %d: data after the JSON object", dec.InputOffset())
	}
	s := &Secrets{enrollment: make(map[string][sha256.Size]byte, len(sf.Enrollment))}
	var err error
	if sf.AdminToken == "" {
		return nil, fmt.Errorf("adminToken: missing")
	}
	if s.admin, err = secretHash(sf.AdminToken); err != nil {
		return nil, fmt.Errorf("adminToken: %w", err)
	}
	if strings.HasPrefix(sf.WebhookSecret, hashPrefix) {
		return nil, fmt.Errorf("webhookSecret: must be the secret itself, not a hash: it is the HMAC key webhook signatures are checked with")
	}
	s.webhook = []byte(sf.WebhookSecret)
	clients := make([]string, 0, len(sf.Enrollment))
	for c := range sf.Enrollment {
		clients = append(clients, c)
	}
	sort.Strings(clients) // report the first bad client in a stable order
	for _, c := range clients {
		if c == "" {
			return nil, fmt.Errorf("enrollment: empty client id")
		}
		v := sf.Enrollment[c]
		if v == "" {
			return nil, fmt.Errorf("enrollment.%s: empty secret", c)
		}
		h, err := secretHash(v)
		if err != nil {
			return nil, fmt.Errorf("enrollment.%s: %w", c, err)
		}
		s.enrollment[c] = h
	}
	return s, nil
}

// secretHash returns the SHA-256 of a secret, or decodes it when the value
// is already "sha256:<hex>".
func secretHash(v string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexHash, ok := strings.CutPrefix(v, hashPrefix)
	if !ok {
		return sha256.Sum256([]byte(v)), nil
	}
	b, err := hex.DecodeString(hexHash)
	if err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("%q must be followed by %d hex digits", hashPrefix, 2*sha256.Size)
	}
	copy(h[:], b)
	return h, nil
}

// adminOK reports whether token is the admin token.
func (s *Secrets) adminOK(token string) bool {
	h := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h[:], s.admin[:]) == 1
}

// enrollOK reports whether secret is the enrollment secret of client. The
// secret is checked against that client's only, so one client's secret
// cannot enroll an endpoint into another client. An unknown client is
// compared against a hash no secret has, so the answer takes the same time.
func (s *Secrets) enrollOK(client, secret string) bool {
	want, known := s.enrollment[client]
	h := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(h[:], want[:]) == 1
	return known && match
}
