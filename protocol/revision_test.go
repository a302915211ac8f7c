package protocol

import "testing"

func TestShortRevision(t *testing.T) {
	tests := []struct{ name, rev, want string }{
		{"a full commit hash", "4f2a9c1e0b7d3a5f8e6c2b1a0d9f8e7c6b5a4d3e", "4f2a9c1e0b7d"},
		{"exactly twelve digits", "4f2a9c1e0b7d", "4f2a9c1e0b7d"},
		{"already short", "4f2a9c1", "4f2a9c1"},
		{"no revision yet", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShortRevision(tt.rev); got != tt.want {
				t.Errorf("ShortRevision(%q) = %q, want %q", tt.rev, got, tt.want)
			}
		})
	}
}
