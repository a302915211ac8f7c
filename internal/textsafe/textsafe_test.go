package textsafe

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/textsafe/textsafetest"
)

// hostile is text an endpoint, a policy or a commit could hold, for the
// fuzz targets' seeds.
var hostile = []string{
	"",
	"KB5044284",
	"openssl@3.0.16-1~deb12u1",
	"Mozilla Firefox (x64 en-US) ü 火狐",
	"evil\x1b]0;pwned\x07@1",
	"\x1b[2J\x1b[H",
	"a\tb\nc\rd\x00e\x7f",
	"C1 \u0085 \u009b31m",
	"\xff\xfe not UTF-8",
	"abc\u202eexe.txt",
	"zero\u200bwidth\ufeff",
	"tag \U000e0041",
	"line\u2028separator",
	`C:\x1b`,
	"x |\n| **pwned** | <!-- hide the rest",
	"`code` ``two`` [link](http://evil.example) ![img](x) <b>html</b> &lt; # h ~~s~~ $x$ _e_",
	"=HYPERLINK(\"http://evil.example\",\"click\")",
	"+1", "-1", "@SUM(A1)", "\t=1", "\r=1",
}

func TestTerminal(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a package version is unchanged", "openssl@3.0.16-1~deb12u1", "openssl@3.0.16-1~deb12u1"},
		{"letters of any script are unchanged", "Mozilla Firefox (x64 en-US) ü 火狐", "Mozilla Firefox (x64 en-US) ü 火狐"},
		{"colour escapes are shown, not obeyed", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"tab, newline, carriage return, NUL and DEL", "a\tb\nc\rd\x00e\x7f", `a\x09b\x0ac\x0dd\x00e\x7f`},
		{"C1 controls", "C1 \u0085 \u009b", `C1 \x85 \x9b`},
		{"bytes that are not UTF-8", "\xff\xfe not UTF-8", `\xff\xfe not UTF-8`},
		{"a right-to-left override", "abc\u202eexe.txt", `abc\u202eexe.txt`},
		{"zero-width characters", "zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"a tag character", "tag\U000e0041", `tag\U000e0041`},
		{"a line separator", "a\u2028b", `a\u2028b`},
		{"a backslash is doubled, so an escape always stands for one", `C:\x1b`, `C:\\x1b`},
		{"a real replacement character is kept", "\uFFFD is real", "\uFFFD is real"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Terminal(tt.in); got != tt.want {
				t.Errorf("Terminal(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"an update id is unchanged", "Google.Chrome@131.0.6778.86", "Google.Chrome@131.0.6778.86"},
		{"a cell separator and a newline cannot end the cell or the row", "x |\n| y", `x \|\\x0a\| y`},
		{"emphasis", "**bold** _it_", `\*\*bold\*\* \_it\_`},
		{"an HTML comment cannot hide what follows", "<!-- rest", "&lt;!-- rest"},
		{"HTML", "<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"},
		{"an entity shows as written", "&lt;", "&amp;lt;"},
		{"links and images", "![i](x) [l](y)", `!\[i\](x) \[l\](y)`},
		{"code", "`x`", "\\`x\\`"},
		{"a heading mark, strikethrough and math", "# ~~s~~ $x$", `\# \~\~s\~\~ \$x\$`},
		{"a pull request's number is left as it is", "Enforce Acme (#43)", "Enforce Acme (#43)"},
		{"a backslash shows as one", `C:\Temp`, `C:\\Temp`},
		{"a terminal escape is shown", "a\x1b[2Jb", `a\\x1b\[2Jb`},
		{"a right-to-left override is shown", "a\u202eb", `a\\u202eb`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Markdown(tt.in); got != tt.want {
				t.Errorf("Markdown(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMarkdownCode(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a rule's position", "clients/acme/policy.cue:12", "`clients/acme/policy.cue:12`"},
		{"a backtick gets a longer fence", "a`b", "``a`b``"},
		{"a run of backticks gets a longer fence still", "a``b`", "``` a``b` ```"},
		{"a backtick at the start is kept apart from the fence", "`x", "`` `x ``"},
		{"spaces at the ends are kept", " x ", "`  x  `"},
		{"a cell separator stays in the cell", "a|b", "`a\\|b`"},
		{"a newline cannot end the row", "a\nb", "`a\\x0ab`"},
		{"a backslash is shown as is (code has no escapes)", `C:\x`, "`C:\\x`"},
		{"empty", "", "`  `"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MarkdownCode(tt.in); got != tt.want {
				t.Errorf("MarkdownCode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCSV(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a hostname is unchanged", "ACME-WS-001", "ACME-WS-001"},
		{"a formula", `=HYPERLINK("http://evil.example","click")`, `'=HYPERLINK("http://evil.example","click")`},
		{"a leading plus", "+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"},
		{"a leading minus", "-2+3", "'-2+3"},
		{"a leading at sign", "@SUM(A1:A9)", "'@SUM(A1:A9)"},
		{"a leading tab", "\t=1", `'\x09=1`},
		{"a leading carriage return", "\r=1", `'\x0d=1`},
		{"an equals sign inside is harmless", "a=b", "a=b"},
		{"a terminal escape is shown", "x\x1b[2J", `x\x1b[2J`},
		{"a backslash is kept as is", `C:\Temp`, `C:\Temp`},
		{"an empty cell stays empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CSV(tt.in); got != tt.want {
				t.Errorf("CSV(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// unescapedMarkup returns the offset of the first character of md that
// Markdown could read as markup, or -1.
func unescapedMarkup(md string) int {
	if strings.HasPrefix(md, "#") {
		return 0
	}
	for i := 0; i < len(md); i++ {
		switch c := md[i]; {
		case c == '\\':
			i++
		case strings.IndexByte("`*_[]|~$<>", c) >= 0:
			return i
		case c == '&' && !strings.HasPrefix(md[i:], "&lt;") && !strings.HasPrefix(md[i:], "&gt;") && !strings.HasPrefix(md[i:], "&amp;"):
			return i
		}
	}
	return -1
}

func FuzzTerminal(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Terminal(s)
		if r, i := textsafetest.RawControl(out); i >= 0 || strings.Contains(out, "\n") {
			t.Fatalf("Terminal(%q) = %q holds %U at byte %d", s, out, r, i)
		}
		if clean(s, true) && out != s {
			t.Fatalf("Terminal changed clean text %q to %q", s, out)
		}
	})
}

// FuzzMarkdown: whatever the text, a table row of it as text and as code
// keeps its two cells, holds no control character, and its text cell no
// markup.
func FuzzMarkdown(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text, code := Markdown(s), MarkdownCode(s)
		row := "| " + text + " | " + code + " |"
		if r, i := textsafetest.RawControl(row); i >= 0 || strings.Contains(row, "\n") {
			t.Fatalf("row of %q holds %U at byte %d: %q", s, r, i, row)
		}
		if n := len(textsafetest.Cells(row)); n != 2 {
			t.Fatalf("row of %q has %d cells, want 2: %q", s, n, row)
		}
		if i := unescapedMarkup(text); i >= 0 {
			t.Fatalf("Markdown(%q) = %q leaves markup at byte %d", s, text, i)
		}
		if !strings.HasPrefix(code, "`") {
			// Shown as escaped plain text (a pipe after an odd run of
			// backslashes): the checks of Markdown apply.
			if code != text {
				t.Fatalf("MarkdownCode(%q) = %q, neither a code span nor Markdown's %q", s, code, text)
			}
			return
		}
		fence := code[:strings.IndexFunc(code, func(r rune) bool { return r != '`' })]
		inner := strings.TrimSuffix(strings.TrimPrefix(code, fence), fence)
		if strings.Contains(inner, fence) {
			t.Fatalf("MarkdownCode(%q) = %q: the fence %q occurs inside", s, code, fence)
		}
	})
}

// FuzzCSV: whatever the cells, a spreadsheet reads the same number of
// cells back, none of them starts a formula, and none holds a control
// character.
func FuzzCSV(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, "ok")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.Write([]string{CSV(a), CSV(b), "end"}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil || len(recs) != 1 || len(recs[0]) != 3 {
			t.Fatalf("cells %q and %q read back as %q (%v)", a, b, recs, err)
		}
		for _, cell := range recs[0][:2] {
			if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
				t.Fatalf("cell %q starts a formula", cell)
			}
			if r, i := textsafetest.RawControl(cell); i >= 0 || strings.Contains(cell, "\n") {
				t.Fatalf("cell %q holds %U at byte %d", cell, r, i)
			}
		}
	})
}
