package protocol

import (
	"strings"
	"testing"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		name string
		kind TextKind
		in   string
		want string // "" when the text is accepted
	}{
		{"a KB number", TextName, "KB5044284", ""},
		{"a Debian package version", TextName, "openssl@3.0.15-1~deb12u1", ""},
		{"a label with a space and an accent", TextName, "Zürich office", ""},
		{"a name in Japanese", TextName, "経理部-PC", ""},
		{"an empty value (presence is checked elsewhere)", TextName, "", ""},
		{"a terminal escape in an id", TextName, "evil\x1b]0;pwned\x07", "control character U+001B at byte 4"},
		{"a NUL byte", TextName, "KB\x00", "control character U+0000 at byte 2"},
		{"a newline in an id", TextName, "a\nb", "control character U+000A at byte 1"},
		{"a tab in a hostname", TextName, "ws\t01", "control character U+0009 at byte 2"},
		{"DEL", TextName, "x\x7f", "control character U+007F at byte 1"},
		{"a C1 control (CSI)", TextName, "x\u009b31m", "control character U+009B at byte 1"},
		{"bytes that are not UTF-8", TextName, "caf\xe9", "invalid UTF-8 at byte 3"},
		{"a right-to-left override in a hostname", TextName, "ws-\u202egnp.exe", "invisible format character U+202E at byte 3"},
		{"a zero-width space in an id", TextName, "KB50\u200b44284", "invisible format character U+200B at byte 4"},
		{"a byte-order mark", TextName, "\ufeffKB1", "invisible format character U+FEFF at byte 0"},
		{"a no-break space in a name", TextName, "Fire\u00a0fox", "unprintable character U+00A0 at byte 4"},
		{"a line separator in a name", TextName, "a\u2028b", "line separator U+2028 at byte 1"},
		{"a title with marks for right-to-left text", TextLine, "\u200fעדכון אבטחה\u200f (KB5044284)", ""},
		{"a title with a newline", TextLine, "Update\n<!-- hidden -->", "control character U+000A at byte 6"},
		{"a title with a paragraph separator", TextLine, "Update\u2029", "paragraph separator U+2029 at byte 6"},
		{"tool output over lines, with tabs", TextLines, "Reading package lists...\n\tDone", ""},
		{"tool output with a colour escape", TextLines, "ok\n\x1b[31mfailed", "control character U+001B at byte 3"},
		{"tool output with Windows line ends", TextLines, "line\r\n", "control character U+000D at byte 4"},
		{"error text with a NUL", TextLines, "exit 1\x00", "control character U+0000 at byte 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckText(tt.kind, tt.in)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("CheckText(%d, %q) = %q, want %q", tt.kind, tt.in, got, tt.want)
			}
		})
	}
}

func TestFitText(t *testing.T) {
	tests := []struct {
		name string
		kind TextKind
		in   string
		want string
	}{
		{"accepted text is unchanged", TextLines, "C:\\Windows\\Temp\nexit 1", "C:\\Windows\\Temp\nexit 1"},
		{"Windows line ends become newlines", TextLines, "a\r\nb\r\n", "a\nb\n"},
		{"a progress bar's carriage returns become newlines", TextLines, "10%\r50%\r100%", "10%\n50%\n100%"},
		{"a colour escape is shown, not sent", TextLines, "\x1b[31mfailed\x1b[0m", `\x1b[31mfailed\x1b[0m`},
		{"bytes that are not UTF-8", TextLines, "caf\xe9", `caf\xe9`},
		{"a C1 control", TextLine, "x\u009by", `x\x9by`},
		{"a newline in a title", TextLine, "a\nb", `a\x0ab`},
		{"a zero-width space in a name", TextName, "KB\u200b1", `KB\u200b1`},
		{"a no-break space in a name", TextName, "a\u00a0b", `a\u00a0b`},
		{"a tag character in a name", TextName, "a\U000e0041b", `a\U000e0041b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FitText(tt.kind, tt.in)
			if got != tt.want {
				t.Errorf("FitText(%d, %q) = %q, want %q", tt.kind, tt.in, got, tt.want)
			}
			if err := CheckText(tt.kind, got); err != nil {
				t.Errorf("CheckText refuses what FitText made of %q: %v", tt.in, err)
			}
		})
	}
}

func TestValidCVE(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"CVE-2024-0727", true},
		{"CVE-2024-1234567", true},
		{"CVE-2024-1234567890123456789", true},
		{"CVE-2024-12345678901234567890", false},
		{"CVE-2024-072", false},
		{"CVE-24-0727", false},
		{"cve-2024-0727", false},
		{"CVE-2024-0727 ", false},
		{"CVE-2024-07a7", false},
		{"CVE-2024-0727\x1b[2J", false},
		{"CVE-2024", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := ValidCVE(tt.id); got != tt.want {
			t.Errorf("ValidCVE(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// FuzzFitText: whatever a tool prints, what the agent sends after FitText
// is accepted by the controller.
func FuzzFitText(f *testing.F) {
	for _, s := range []string{"", "plain", "a\r\nb", "\x1b[2J\x00", "caf\xe9", "\u202e\u200b\ufeff", "\u2028", "\xf0\x9f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []TextKind{TextName, TextLine, TextLines} {
			fit := FitText(kind, s)
			if err := CheckText(kind, fit); err != nil {
				t.Errorf("kind %d: FitText(%q) = %q, which CheckText refuses: %v", kind, s, fit, err)
			}
			if CheckText(kind, s) == nil && fit != s {
				t.Errorf("kind %d: FitText changed accepted text %q to %q", kind, s, fit)
			}
			if kind != TextLines && strings.ContainsAny(fit, "\n\t") {
				t.Errorf("kind %d: FitText(%q) = %q keeps a newline or tab", kind, s, fit)
			}
		}
	})
}
