package api

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/patchline/patchline/protocol"
)

func TestLoadSecrets(t *testing.T) {
	good, err := os.ReadFile("testdata/secrets.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string // substring; "" means it loads
	}{
		{name: "private file with raw and pre-hashed secrets", content: string(good), mode: 0o600},
		{name: "owner read-only file", content: string(good), mode: 0o400},
		{name: "file readable by everyone", content: string(good), mode: 0o644, wantErr: "run chmod 600"},
		{name: "file readable by the group", content: string(good), mode: 0o640, wantErr: "lets group or others read it"},
		{name: "no admin token", content: `{"enrollment": {"acme": "x"}}`, mode: 0o600, wantErr: "adminToken: missing"},
		{name: "pre-hashed value with bad hex", content: `{"adminToken": "admin-token-for-tests-only", "enrollment": {"acme": "sha256:zz"}}`, mode: 0o600,
			wantErr: "enrollment.acme: \"sha256:\" must be followed by 64 hex digits"},
		{name: "pre-hashed webhook secret", content: `{"adminToken": "admin-token-for-tests-only", "webhookSecret": "sha256:00"}`, mode: 0o600,
			wantErr: "webhookSecret: must be the secret itself"},
		{name: "empty enrollment secret", content: `{"adminToken": "admin-token-for-tests-only", "enrollment": {"acme": ""}}`, mode: 0o600,
			wantErr: "enrollment.acme: empty secret"},
		{name: "admin token of one character", content: `{"adminToken": "a"}`, mode: 0o600,
			wantErr: "adminToken: too short to be secret (1 characters, at least 16 are needed): generate one with `openssl rand -hex 32`"},
		{name: "admin token one character short", content: `{"adminToken": "0123456789abcde"}`, mode: 0o600,
			wantErr: "adminToken: too short to be secret (15 characters"},
		{name: "short enrollment secret", content: `{"adminToken": "admin-token-for-tests-only", "enrollment": {"acme": "acme"}}`, mode: 0o600,
			wantErr: "enrollment.acme: too short to be secret (4 characters"},
		{name: "short secret counted in characters, not bytes", content: `{"adminToken": "admin-token-for-tests-only", "enrollment": {"acme": "äöüäöüäöü"}}`, mode: 0o600,
			wantErr: "enrollment.acme: too short to be secret (9 characters"},
		{name: "misspelt field", content: `{"adminToken": "admin-token-for-tests-only", "enrolment": {}}`, mode: 0o600, wantErr: `unknown field "enrolment"`},
		{name: "not JSON", content: `adminToken = "a"`, mode: 0o600, wantErr: "offset 1"},
		{name: "two objects", content: `{"adminToken": "admin-token-for-tests-only"} {}`, mode: 0o600, wantErr: "data after the JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, []byte(tt.content), tt.mode)
			s, err := LoadSecrets(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !s.adminOK(adminToken) || s.adminOK("wrong") {
					t.Error("admin token check is wrong")
				}
				if !s.enrollOK("acme", acmeSecret) || !s.enrollOK("globex", globexSecret) {
					t.Error("enrollment secrets (raw and pre-hashed) do not match")
				}
				if string(s.webhook) != webhookSecret {
					t.Errorf("webhook secret = %q, want it raw", s.webhook)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded; want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file and contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestSecretsShortestAccepted: an admin token or enrollment secret in the
// clear needs 16 characters; a pre-hashed one has no length rule, since
// the file does not show how long the secret is.
func TestSecretsShortestAccepted(t *testing.T) {
	shortHash := sha256.Sum256([]byte("x"))
	tests := []struct {
		name, token string
		wantOK      bool
	}{
		{"16 characters in the clear", "0123456789abcdef", true},
		{"15 characters in the clear", "0123456789abcde", false},
		{"a short token given pre-hashed", "sha256:" + hex.EncodeToString(shortHash[:]), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sf := &protocol.SecretsFile{AdminToken: tt.token, Enrollment: map[string]string{"acme": tt.token}}
			_, err := parseSecrets(sf)
			if (err == nil) != tt.wantOK {
				t.Errorf("parseSecrets: %v, want accepted %v", err, tt.wantOK)
			}
		})
	}
}

func TestEnrollmentSecretIsPerClient(t *testing.T) {
	s := loadTestSecrets(t)
	tests := []struct {
		name, client, secret string
		want                 bool
	}{
		{"acme secret for acme", "acme", acmeSecret, true},
		{"globex secret for globex", "globex", globexSecret, true},
		{"globex secret for acme", "acme", globexSecret, false},
		{"acme secret for globex", "globex", acmeSecret, false},
		{"acme secret for a client with no secret", "initech", acmeSecret, false},
		{"empty secret for an unknown client", "initech", "", false},
	}
	for _, tt := range tests {
		if got := s.enrollOK(tt.client, tt.secret); got != tt.want {
			t.Errorf("%s: enrollOK = %v, want %v", tt.name, got, tt.want)
		}
	}
}
