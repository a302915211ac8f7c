// Package textsafetest holds the checks that tests of renderers make on
// their output: that no character a reader must not be handed raw is in
// it, and that every row of a Markdown table has the cells of its header,
// counted as GitHub counts them.
package textsafetest

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// RawControl returns the first character of s that a terminal or a
// Markdown or CSV reader must not be handed raw, and its byte offset, or
// -1: a control character other than newline, a format character
// (bidirectional controls, zero-width characters), a line or paragraph
// separator, or a byte that is not UTF-8 (returned as utf8.RuneError).
func RawControl(s string) (rune, int) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) ||
			unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return r, i
		}
		i += size
	}
	return 0, -1
}

// Cells splits a Markdown table row into its cells as GitHub does: at
// every pipe that no backslash escapes, code spans included.
func Cells(row string) []string {
	row = strings.TrimPrefix(strings.TrimSuffix(row, "|"), "|")
	var out []string
	start := 0
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++
		case '|':
			out = append(out, row[start:i])
			start = i + 1
		}
	}
	return append(out, row[start:])
}

// TableRows reports every row of a table in md whose cells are not as
// many as its header's, and returns the rows of all tables, header and
// delimiter lines left out. A table is a run of lines starting with "|".
func TableRows(t testing.TB, md string) []string {
	t.Helper()
	var rows []string
	header := -1
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			header = -1
			continue
		}
		n := len(Cells(line))
		switch {
		case header < 0:
			header = n
		case strings.HasPrefix(line, "|---"):
		case n != header:
			t.Errorf("table row has %d cells, its header %d: %q", n, header, line)
		default:
			rows = append(rows, line)
		}
	}
	return rows
}
