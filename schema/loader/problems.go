package loader

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"cuelang.org/go/cue/errors"
)

// simplify shortens what CUE reports for a value that matches no branch
// of a disjunction: a header "N errors in empty disjunction:" followed by
// one error per branch, most of them noise (the branch holding the
// default, the list branch of "a string or a list"). For each such group
// it keeps the errors that say why the value is invalid ("out of bound",
// "field not allowed") and, when every branch only reports a conflict,
// the last conflict, which compares the value with the type it should
// have. A "field not allowed" where another branch allows the field but
// not its value (sla.knownExploited: 14 against the default sla and #SLA)
// counts as a conflict.
func simplify(errs []errors.Error) []errors.Error {
	out := make([]errors.Error, 0, len(errs))
	for i := 0; i < len(errs); i++ {
		if !isDisjunctionHeader(errs[i]) {
			out = append(out, errs[i])
			continue
		}
		prefix := errs[i].Path()
		j := i + 1
		for j < len(errs) && !isDisjunctionHeader(errs[j]) && hasPrefix(errs[j].Path(), prefix) {
			j++
		}
		group := errs[i+1 : j]
		var keep []errors.Error
		for _, e := range group {
			if !isConflict(e) && !(isNotAllowed(e) && conflictAt(group, e.Path())) {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 && len(group) > 0 {
			last := group[len(group)-1]
			for _, e := range group {
				if isConflict(e) {
					last = e
				}
			}
			keep = []errors.Error{last}
		}
		out = append(out, keep...)
		i = j - 1
	}
	return out
}

func isDisjunctionHeader(e errors.Error) bool {
	format, _ := e.Msg()
	return strings.HasSuffix(format, "errors in empty disjunction:")
}

func isConflict(e errors.Error) bool {
	format, _ := e.Msg()
	return strings.HasPrefix(format, "conflicting values")
}

func isNotAllowed(e errors.Error) bool {
	format, _ := e.Msg()
	return format == "field not allowed"
}

// conflictAt reports whether errs hold a conflict at path.
func conflictAt(errs []errors.Error, path []string) bool {
	return slices.ContainsFunc(errs, func(e errors.Error) bool { return isConflict(e) && slices.Equal(e.Path(), path) })
}

func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}

// outOfBound matches CUE's message for a string that fails a pattern.
var outOfBound = regexp.MustCompile(`^invalid value (.*) \(out of bound =~"(.*)"\)$`)

// enumPattern matches the schema's patterns for a fixed set of words,
// such as ^(never|if-required|force)$.
var enumPattern = regexp.MustCompile(`^\^\(([A-Za-z0-9|-]+)\)\$$`)

// mismatch matches CUE's message for a value of the wrong kind.
var mismatch = regexp.MustCompile(`^conflicting values (.*) and (.*) \(mismatched types \w+ and \w+\)$`)

// kindWords name CUE's basic kinds for people.
var kindWords = map[string]string{
	"string": "a quoted string",
	"int":    "a whole number",
	"number": "a number",
	"float":  "a number",
	"bool":   "true or false",
}

func isKind(s string) bool { _, ok := kindWords[s]; return ok }

// patternHints say in words what the schema's other patterns want.
var patternHints = map[string]string{
	`^([01][0-9]|2[0-3]):[0-5][0-9]$`: `use a time of day as HH:MM, e.g. "22:00"`,
	`^[a-z0-9][a-z0-9._-]*$`:          "use lower-case letters, digits, '.', '_' and '-'",
	`^[A-Za-z0-9][A-Za-z0-9._-]*$`:    "use letters, digits, '.', '_' and '-'",
	`^CVE-[0-9]{4}-[0-9]{4,}$`:        `use a CVE id such as "CVE-2024-6387"`,
}

// explain rewrites a pattern failure as what the user should write
// instead: `invalid value "forced" (out of bound =~"^(never|force)$")`
// becomes `invalid value "forced": use one of never, force`.
func explain(msg string) string {
	if m := mismatch.FindStringSubmatch(msg); m != nil {
		value, want := m[1], m[2]
		if isKind(value) {
			value, want = want, value
		}
		if isKind(want) && !isKind(value) {
			return fmt.Sprintf("invalid value %s: want %s", value, kindWords[want])
		}
		if strings.HasPrefix(want, "[") && !strings.HasPrefix(value, "[") {
			return fmt.Sprintf("invalid value %s: want a list, e.g. [%s]", value, value)
		}
	}
	m := outOfBound.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	if e := enumPattern.FindStringSubmatch(m[2]); e != nil {
		return fmt.Sprintf("invalid value %s: use one of %s", m[1], strings.ReplaceAll(e[1], "|", ", "))
	}
	if hint, ok := patternHints[m[2]]; ok {
		return fmt.Sprintf("invalid value %s: %s", m[1], hint)
	}
	return msg
}
