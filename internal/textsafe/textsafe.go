// Package textsafe writes text that came from outside Patchline (what
// endpoints report, what a fleet repo and its Git history say) into each
// format Patchline outputs, so that it is always shown as data: it never
// moves a terminal's cursor or sets its title, never turns into Markdown
// markup or leaves its table cell, and never becomes a spreadsheet
// formula. There is one function per format; JSON needs none, as
// encoding/json escapes.
//
// Every format shows the same characters the same way: a control
// character (C0, DEL, C1) and a byte that is not UTF-8 as \xNN, an
// invisible format character (a bidirectional override, a zero-width
// character, a byte-order mark) and a line or paragraph separator as
// \uNNNN. The agent API already refuses most of these (protocol.CheckText);
// the renderers escape anyway, because a snapshot, a policy or a commit
// message reaches them by other roads.
package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Terminal makes s safe to print on a terminal. A backslash is doubled,
// so that an escape in the output always stands for one character.
func Terminal(s string) string { return escape(s, true) }

// markdownEscaper escapes what Markdown (CommonMark with GitHub's
// extensions: tables, strikethrough, math) reads as markup anywhere in a
// line of text or in a table cell.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "|", `\|`, "~", `\~`, "$", `\$`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;",
)

// Markdown makes s safe as running Markdown text or as a table cell: it
// reads as s itself, on one line, and no character of it is markup (no
// emphasis, strikethrough, link, image, HTML or comment, no cell
// separator, no heading where it starts a line). A "#" inside the text,
// as in "(#44)", is left as it is: only at the start of a line is it
// markup.
func Markdown(s string) string {
	md := markdownEscaper.Replace(escape(s, false))
	if strings.HasPrefix(md, "#") {
		return `\` + md
	}
	return md
}

// MarkdownCode returns a Markdown code span, safe in a table cell, that
// shows s: the fence is longer than any run of backticks in s, and a pipe
// is escaped as GitHub's tables need even inside code. A table takes a
// backslash as escaping the next character even inside code, and a code
// span cannot escape it back: text where a pipe follows an odd run of
// backslashes (the pipe's own escape would be eaten) is shown as escaped
// plain text (Markdown) instead.
func MarkdownCode(s string) string {
	if oddBackslashesBeforePipe(s) {
		return Markdown(s)
	}
	code := strings.ReplaceAll(escape(s, false), "|", `\|`)
	longest, run := 0, 0
	for i := 0; i < len(code); i++ {
		if code[i] != '`' {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	fence := strings.Repeat("`", longest+1)
	// A code span drops one space at each end when both ends have one;
	// padding keeps a backtick at an end from joining the fence, and
	// spaces at the ends of s.
	if code == "" || code[0] == '`' || code[0] == ' ' || code[len(code)-1] == '`' || code[len(code)-1] == ' ' {
		code = " " + code + " "
	}
	return fence + code + fence
}

// oddBackslashesBeforePipe reports whether a pipe in s follows an odd run
// of backslashes.
func oddBackslashesBeforePipe(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			run++
		case '|':
			if run%2 == 1 {
				return true
			}
			run = 0
		default:
			run = 0
		}
	}
	return false
}

// CSV makes s safe as a cell of a CSV file a spreadsheet opens: a cell
// that starts with =, +, -, @, a tab or a carriage return gets a leading
// single quote, so that no spreadsheet takes it for a formula (OWASP's
// rule against CSV injection). The CSV writer quotes the rest.
func CSV(s string) string {
	e := escape(s, false)
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + e
	}
	return e
}

// escape writes the characters a reader must not be handed raw as
// escapes, and a backslash as two when doubleBackslash is set.
func escape(s string, doubleBackslash bool) string {
	if clean(s, doubleBackslash) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' && doubleBackslash:
			b.WriteString(`\\`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case hidden(r) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// clean reports whether escape would leave s as it is; most text is
// printable ASCII.
func clean(s string, doubleBackslash bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || (c == '\\' && doubleBackslash) {
			return false
		}
	}
	return true
}

// hidden reports the characters that reorder or hide text, or break a
// line, without being control characters: format characters
// (bidirectional marks, embeddings, overrides and isolates, zero-width
// characters, the byte-order mark, tag characters) and the line and
// paragraph separators.
func hidden(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }
