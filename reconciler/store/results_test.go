package store

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/patchline/patchline/protocol"
)

// TestWithNoteStaysWithinTheErrorBound: the controller's note on an
// unknown outcome never makes the stored error longer than a state
// snapshot accepts, whatever the agent sent.
func TestWithNoteStaysWithinTheErrorBound(t *testing.T) {
	note := "; still missing by the inventory of 2026-03-10 09:00 UTC"
	for _, tc := range []struct {
		name, msg string
		want      string // "" to check only the bound and the note
	}{
		{"short error", "interrupted", "interrupted" + note},
		{"error at the bound", strings.Repeat("x", protocol.MaxErrorBytes), ""},
		{"multi-byte characters cut at the bound", strings.Repeat("é", protocol.MaxErrorBytes/2), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := WithNote(tc.msg, note)
			if len(got) > protocol.MaxErrorBytes || !utf8.ValidString(got) || !strings.HasSuffix(got, note) {
				t.Errorf("WithNote: %d bytes, valid UTF-8 %v, ends with the note %v; want at most %d, valid, with the note",
					len(got), utf8.ValidString(got), strings.HasSuffix(got, note), protocol.MaxErrorBytes)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("WithNote = %q, want %q", got, tc.want)
			}
		})
	}
}
