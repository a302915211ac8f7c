package argcheck

import (
	"strings"
	"testing"
)

func TestWord(t *testing.T) {
	id := Set{AnyCase, "._+-"}
	lower := Set{LowerCase, "@+._-"}
	tests := []struct {
		name string
		s    string
		set  Set
		want string // part of the error; empty when accepted
	}{
		{"a winget id", "Notepad++.Notepad++", id, ""},
		{"a Store product id", "9NBLGGH4NNS1", id, ""},
		{"a versioned formula", "openssl@3", lower, ""},
		{"empty", "", id, "it is empty"},
		{"too long", strings.Repeat("a", 33), id, "it is 33 bytes long, more than 32"},
		{"an option", "--override", id, "it must start with a letter or digit"},
		{"a Windows-style option", "/silent", id, "it must start with a letter or digit"},
		{"uppercase where only lowercase is allowed", "Git", lower, "it must start with a lowercase letter or digit"},
		{"a space and a second argument", "Git.Git --force", id, `it contains ' '; it may hold only letters, digits and . _ + -`},
		{"a quote", `a"b`, lower, `it contains '"'; it may hold only lowercase letters, digits and @ + . _ -`},
		{"a letter where only digits are allowed", "1a", Set{NoLetters, ""}, `it contains 'a'; it may hold only digits`},
		{"a shell metacharacter", "a;b", id, `it contains ';'`},
		{"a non-ASCII letter", "café", id, `it contains 'é'`},
		{"a newline", "a\nb", id, `it contains '\n'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Word(tc.s, 32, tc.set)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Word(%q) = %v, want it accepted", tc.s, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Word(%q) = %v, want an error saying %q", tc.s, err, tc.want)
			}
		})
	}
}
