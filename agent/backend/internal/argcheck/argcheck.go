// Package argcheck checks the text a job hands to a package manager's
// command line (a package id, a version) against the characters the
// package manager allows, so that what the tool reads is one exact value
// and never an option, a pattern or a second argument. Each backend states
// its own rules with a Set; the errors say which rule a value breaks.
package argcheck

import (
	"errors"
	"fmt"
	"strings"
)

// Letters says which ASCII letters a Set holds.
type Letters int

// The letters a Set may hold.
const (
	AnyCase   Letters = iota // A-Z and a-z
	LowerCase                // a-z
	NoLetters
)

// Set is the characters a field may hold: the ASCII digits, the letters
// Letters says, and the ASCII characters in Punct. Nothing else, no
// whitespace, control or non-ASCII character, is ever in a Set.
type Set struct {
	Letters Letters
	Punct   string
}

// Alnum reports whether c is a digit or one of the set's letters.
func (set Set) Alnum(c byte) bool {
	switch {
	case '0' <= c && c <= '9':
		return true
	case 'a' <= c && c <= 'z':
		return set.Letters != NoLetters
	case 'A' <= c && c <= 'Z':
		return set.Letters == AnyCase
	}
	return false
}

// Outside returns the first character of s that is not in the set, and
// whether there is one.
func (set Set) Outside(s string) (rune, bool) {
	for _, r := range s {
		if r > 0x7f || !set.Alnum(byte(r)) && !strings.ContainsRune(set.Punct, r) {
			return r, true
		}
	}
	return 0, false
}

// String describes the set for an error: "letters, digits and . _ + -".
func (set Set) String() string {
	var s string
	switch set.Letters {
	case AnyCase:
		s = "letters, digits"
	case LowerCase:
		s = "lowercase letters, digits"
	default:
		s = "digits"
	}
	if set.Punct == "" {
		return strings.Replace(s, ", ", " and ", 1)
	}
	return s + " and " + strings.Join(strings.Split(set.Punct, ""), " ")
}

// Word checks one value a tool reads as one argument: 1 to max bytes of
// set, starting with a letter or digit, so that no tool reads it as an
// option ("-", "--", "/") or finds a second argument in it.
func Word(s string, max int, set Set) error {
	switch {
	case s == "":
		return errors.New("it is empty")
	case len(s) > max:
		return fmt.Errorf("it is %d bytes long, more than %d", len(s), max)
	case !set.Alnum(s[0]):
		if set.Letters == LowerCase {
			return errors.New("it must start with a lowercase letter or digit")
		}
		return errors.New("it must start with a letter or digit")
	}
	if r, bad := set.Outside(s); bad {
		return fmt.Errorf("it contains %q; it may hold only %s", r, set)
	}
	return nil
}
