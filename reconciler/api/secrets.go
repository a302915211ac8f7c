package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/patchline/patchline/protocol"
)

// hashPrefix marks a secret given pre-hashed in the secrets file:
// "sha256:" and 64 hex digits of the SHA-256 of the secret.
const hashPrefix = "sha256:"

// minSecretLen is the fewest characters an admin token or enrollment
// secret given in the clear may have: a shorter one can be guessed. A
// pre-hashed one is exempt, since its length says nothing of the secret's.
const minSecretLen = 16

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

// LoadSecrets reads the secrets file at path (see protocol.SecretsFile) and
// keeps only what the API checks. The admin token is required; an empty
// webhook secret makes every webhook fail to verify, and a client without
// an enrollment secret cannot enroll endpoints.
func LoadSecrets(path string) (*Secrets, error) {
	sf, err := protocol.ReadSecretsFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parseSecrets(sf)
	if err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", path, err)
	}
	return s, nil
}

// parseSecrets hashes the secrets of sf.
func parseSecrets(sf *protocol.SecretsFile) (*Secrets, error) {
	s := &Secrets{enrollment: make(map[string][sha256.Size]byte, len(sf.Enrollment))}
	var err error
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

// secretHash returns the SHA-256 of a secret given in the clear, which
// must have at least minSecretLen characters, or decodes it when the value
// is already "sha256:<hex>".
func secretHash(v string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexHash, ok := strings.CutPrefix(v, hashPrefix)
	if !ok {
		if n := utf8.RuneCountInString(v); n < minSecretLen {
			return h, fmt.Errorf("too short to be secret (%d characters, at least %d are needed): generate one with `openssl rand -hex 32`, or give its hash as %s<64 hex digits>", n, minSecretLen, hashPrefix)
		}
		return sha256.Sum256([]byte(v)), nil
	}
	b, err := hex.DecodeString(hexHash)
	if err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("%q must be followed by %d hex digits", hashPrefix, 2*sha256.Size)
	}
	copy(h[:], b)
	return h, nil
}

// adminOK reports whether token is the admin token; without a secrets
// file there is none.
func (s *Secrets) adminOK(token string) bool {
	if s.admin == ([sha256.Size]byte{}) {
		return false
	}
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

// knows reports whether client has an enrollment secret.
func (s *Secrets) knows(client string) bool {
	_, ok := s.enrollment[client]
	return ok
}
