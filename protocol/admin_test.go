package protocol

import (
	"strings"
	"testing"
)

func TestTokenNamesAndClientIDs(t *testing.T) {
	tests := []struct {
		name    string
		v       string
		wantErr string // "" for valid, as a token name and as a client id
	}{
		{"lowercase with punctuation", "ci-acme.nightly_2", ""},
		{"a digit first", "2026-rotation", ""},
		{"empty", "", "missing"},
		{"upper case", "Acme", `character 'A' at byte 0`},
		{"punctuation first", "-acme", `character '-' at byte 0`},
		{"a slash", "acme/ci", `character '/' at byte 4`},
		{"a terminal escape", "ci\x1b[2J", `character '\x1b' at byte 2`},
		{"a right-to-left override", "ci\u202e", `character '\u202e' at byte 2`},
		{"invalid UTF-8", "ci\xff", `character '\ufffd' at byte 2`},
	}
	for _, tt := range tests {
		for _, check := range []func(string) error{CheckTokenName, CheckClientID} {
			err := check(tt.v)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("%s (%q): %v, want %q", tt.name, tt.v, err, tt.wantErr)
			}
		}
	}
	if err := CheckTokenName(strings.Repeat("a", MaxTokenNameBytes+1)); err == nil || !strings.Contains(err.Error(), "65 bytes, at most 64") {
		t.Errorf("a long token name: %v", err)
	}
	if err := CheckClientID(strings.Repeat("a", MaxTokenNameBytes+1)); err != nil {
		t.Errorf("a client id of 65 bytes: %v, want it valid", err)
	}
}
