package api

import (
	"os"
	"strings"
	"testing"
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
		{name: "pre-hashed value with bad hex", content: `{"adminToken": "a", "enrollment": {"acme": "sha256:zz"}}`, mode: 0o600,
			wantErr: "enrollment.acme: \"sha256:\" must be followed by 64 hex digits"},
		{name: "pre-hashed webhook secret", content: `{"adminToken": "a", "webhookSecret": "sha256:00"}`, mode: 0o600,
			wantErr: "webhookSecret: must be the secret itself"},
		{name: "empty enrollment secret", content: `{"adminToken": "a", "enrollment": {"acme": ""}}`, mode: 0o600,
			wantErr: "enrollment.acme: empty secret"},
		{name: "misspelt field", content: `{"adminToken": "a", "enrolment": {}}`, mode: 0o600, wantErr: `unknown field "enrolment"`},
		{name: "not JSON", content: `adminToken = "a"`, mode: 0o600, wantErr: "offset 1"},
		{name: "two objects", content: `{"adminToken": "a"} {}`, mode: 0o600, wantErr: "data after the JSON value"},
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
