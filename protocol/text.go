package protocol

// The rules for text an endpoint supplies: ids, names, versions, titles,
// hostnames, labels, error texts and tool output. Such text is data that
// renderers show to people (in a terminal, a pull-request comment, a
// spreadsheet), so what no renderer should ever have to show is refused
// where the text enters: by the agent API and by the snapshot codec,
// through the one function here.

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TextKind names the rule a field of endpoint text follows.
type TextKind int

const (
	// TextName is an identifier or a name shown on one line: an update or
	// endpoint id, a package name, a version, a CVE id, a hostname, a label
	// key or value, an OS version. Every character must be printable
	// (letters, marks, numbers, punctuation, symbols, the ASCII space): no
	// control character, no other space, and none of the invisible format
	// characters that reorder or hide text (bidirectional overrides,
	// zero-width characters), so two names that look alike are alike.
	TextName TextKind = iota
	// TextLine is one line of prose, an update's title: no control
	// character and no line or paragraph separator. Format characters are
	// allowed (a right-to-left title needs its marks); renderers escape
	// them.
	TextLine
	// TextLines is text of several lines, an error text or a package
	// tool's output: the rule of TextLine, except that newline and tab are
	// allowed.
	TextLines
)

// Bounds, in bytes, of the text fields of a report, a result and a
// snapshot.
const (
	// MaxIDBytes bounds an update id, a package name, a version, a source
	// package, a required update id, an endpoint id and a job id.
	MaxIDBytes = 512
	// MaxHostnameBytes is the longest DNS name.
	MaxHostnameBytes = 253
	// MaxOSBytes bounds an OS family and an OS version.
	MaxOSBytes = 128
	// MaxLabels bounds the labels of one endpoint.
	MaxLabels = 64
	// MaxLabelKeyBytes and MaxLabelValueBytes bound a label.
	MaxLabelKeyBytes   = 63
	MaxLabelValueBytes = 256
	// MaxTitleBytes bounds an update's title.
	MaxTitleBytes = 1 << 10
	// MaxErrorBytes bounds the error text of a result or an attempt, and
	// the reason of a refusal.
	MaxErrorBytes = 4 << 10
	// MaxOutputBytes bounds a result's tool output; an agent keeps far
	// less, with room for the escapes FitText adds.
	MaxOutputBytes = 64 << 10
)

// CheckText reports the first character of s that a field of kind may not
// hold, with its byte offset: "control character U+001B at byte 7".
func CheckText(kind TextKind, s string) error {
	for i := 0; i < len(s); {
		// Printable ASCII is allowed in every kind: the common case costs
		// one comparison per byte.
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if what := refused(kind, r, size); what != "" {
			if r == utf8.RuneError && size == 1 {
				return fmt.Errorf("%s at byte %d", what, i)
			}
			return fmt.Errorf("%s U+%04X at byte %d", what, r, i)
		}
		i += size
	}
	return nil
}

// refused says what r, decoded in size bytes, is when a field of kind may
// not hold it, and "" when it may.
func refused(kind TextKind, r rune, size int) string {
	switch {
	case r == utf8.RuneError && size == 1:
		return "invalid UTF-8"
	case kind == TextLines && (r == '\n' || r == '\t'):
		return ""
	case unicode.IsControl(r):
		return "control character"
	case r == '\u2028':
		return "line separator"
	case r == '\u2029':
		return "paragraph separator"
	case kind != TextName:
		return ""
	case unicode.Is(unicode.Cf, r):
		return "invisible format character"
	case !unicode.IsPrint(r):
		return "unprintable character"
	}
	return ""
}

// FitText returns s with every character CheckText(kind) refuses written
// as a visible escape: \xNN for a control character (C0, DEL, C1) and for
// a byte that is not UTF-8, \uNNNN (\UNNNNNNNN beyond the Basic
// Multilingual Plane) for any other. For TextLines, a
// carriage return (alone, as a progress bar prints it, or before a
// newline, as Windows tools end lines) becomes a newline. The agent fits
// what its tools printed before sending it, so a result is never refused
// for its text.
func FitText(kind TextKind, s string) string {
	if CheckText(kind, s) == nil {
		return s
	}
	if kind == TextLines {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch what := refused(kind, r, size); {
		case what == "":
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// ValidCVE reports whether id is a CVE id as CVE records spell it: "CVE-",
// a four-digit year, "-", and 4 to 19 digits.
func ValidCVE(id string) bool {
	rest, ok := strings.CutPrefix(id, "CVE-")
	if !ok || len(rest) < len("2024-0000") || rest[4] != '-' {
		return false
	}
	num := rest[5:]
	return allDigits(rest[:4]) && allDigits(num) && len(num) <= 19
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkValue checks v by kind's rule and bounds its length.
func checkValue(kind TextKind, max int, v string) error {
	if len(v) > max {
		return fmt.Errorf("%d bytes, at most %d are accepted", len(v), max)
	}
	return CheckText(kind, v)
}

// checkField checks v, the value of field in the object at path p ("" at
// the top), by kind's rule and bounds its length. The path is only built
// for an error: a snapshot has millions of fields.
func checkField(p, field string, kind TextKind, max int, v string) error {
	if err := checkValue(kind, max, v); err != nil {
		if p == "" {
			return fmt.Errorf("%s: %w", field, err)
		}
		return fmt.Errorf("%s.%s: %w", p, field, err)
	}
	return nil
}
