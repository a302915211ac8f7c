// Package version orders update versions the way each update source does:
// Debian policy ordering for apt (epochs, upstream version, revision, and
// "~" sorting before everything), and a dotted numeric ordering for winget,
// choco, brew and windows-update. The planner uses it to decide whether a
// candidate version reaches a requirement's minimum version.
package version

import "strings"

// Compare orders two versions of the given source and returns -1 when a is
// older than b, 0 when they are equal in that source's ordering, and +1 when
// a is newer. Every string is a valid input; Compare(s, a, b) is always
// -Compare(s, b, a).
func Compare(source, a, b string) int {
	if source == "apt" {
		return Debian(a, b)
	}
	return Dotted(a, b)
}

// Debian compares two Debian package versions, [epoch:]upstream[-revision],
// as dpkg does. An epoch that is not a run of digits makes the whole string
// count as the upstream version with epoch 0.
func Debian(a, b string) int {
	ae, au, ar := splitDebian(a)
	be, bu, br := splitDebian(b)
	if c := compareDigits(ae, be); c != 0 {
		return c
	}
	if c := debianPart(au, bu); c != 0 {
		return c
	}
	return debianPart(ar, br)
}

func splitDebian(v string) (epoch, upstream, revision string) {
	if i := strings.IndexByte(v, ':'); i >= 0 && allDigits(v[:i]) {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// debianPart is dpkg's verrevcmp: alternate runs of non-digits, compared
// character by character with debianOrder, and runs of digits, compared
// numerically.
func debianPart(a, b string) int {
	for a != "" || b != "" {
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			ac, bc := debianOrder(a), debianOrder(b)
			if ac != bc {
				return sign(ac - bc)
			}
			// Equal weights of non-digits mean the same character on both
			// sides, so both strings have one to drop.
			a, b = a[1:], b[1:]
		}
		var ad, bd string
		ad, a = digitRun(a)
		bd, b = digitRun(b)
		if c := compareDigits(ad, bd); c != 0 {
			return c
		}
	}
	return 0
}

// debianOrder weighs the first character of s: "~" before the end of the
// string, the end before letters, letters before every other character.
func debianOrder(s string) int {
	if s == "" || isDigit(s[0]) {
		return 0
	}
	c := s[0]
	switch {
	case c == '~':
		return -1
	case isLetter(c):
		return int(c)
	default:
		return int(c) + 256
	}
}

// Dotted compares versions made of segments separated by '.', '-', '+' or
// '_'. Segments that are both digit runs compare numerically, any other pair
// compares as strings, and a digit run sorts after a non-digit segment. A
// missing segment equals "0", sorts before any other digit run and after a
// non-digit segment, so "1.0" == "1.0.0" and "1.0-beta" < "1.0".
func Dotted(a, b string) int {
	for a != "" || b != "" {
		var as, bs string
		as, a = segment(a)
		bs, b = segment(b)
		if c := compareSegment(as, bs); c != 0 {
			return c
		}
	}
	return 0
}

func segment(s string) (seg, rest string) {
	i := strings.IndexAny(s, ".-+_")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

func compareSegment(a, b string) int {
	an, bn := allDigits(a), allDigits(b)
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		if bn {
			return compareDigits("", b)
		}
		return 1
	case b == "":
		return -compareSegment(b, a)
	case an && bn:
		return compareDigits(a, b)
	case an:
		return 1
	case bn:
		return -1
	default:
		return strings.Compare(a, b)
	}
}

// compareDigits compares two runs of ASCII digits as numbers of any size; an
// empty run is zero.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func digitRun(s string) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
