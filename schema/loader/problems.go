package loader

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue/errors"

	"github.com/patchline/patchline/schema"
)

// This file turns what CUE reports into what a technician reads: the
// problem in the project's words and what to write instead. No message
// of CUE's reaches a technician unexplained when this file knows it.

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

// isConflict says whether e is CUE's report of two values that cannot be
// unified: two different values, or lists of different lengths.
func isConflict(e errors.Error) bool {
	format, _ := e.Msg()
	return strings.HasPrefix(format, "conflicting values") || strings.HasPrefix(format, "incompatible list lengths")
}

func isNotAllowed(e errors.Error) bool {
	format, _ := e.Msg()
	return format == "field not allowed"
}

func isRequired(e errors.Error) bool {
	format, _ := e.Msg()
	return format == "field is required but not present"
}

// conflictAt reports whether errs hold a conflict at path.
func conflictAt(errs []errors.Error, path []string) bool {
	return slices.ContainsFunc(errs, func(e errors.Error) bool { return isConflict(e) && slices.Equal(e.Path(), path) })
}

func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}

var (
	// outOfBound matches CUE's message for a string that fails a pattern.
	outOfBound = regexp.MustCompile(`^invalid value (.*) \(out of bound =~"(.*)"\)$`)
	// outOfRange matches CUE's message for a number outside a bound.
	outOfRange = regexp.MustCompile(`^invalid value (.*) \(out of bound ([<>]=?)(.*)\)$`)
	// notEmpty matches CUE's message for an empty string where the
	// schema wants text.
	notEmpty = regexp.MustCompile(`^invalid value "" \(out of bound !=""\)$`)
	// enumPattern matches the schema's patterns for a fixed set of words,
	// such as ^(never|if-required|force)$.
	enumPattern = regexp.MustCompile(`^\^\(([A-Za-z0-9|-]+)\)\$$`)
	// mismatch matches CUE's message for a value of the wrong kind.
	mismatch = regexp.MustCompile(`^conflicting values (.*) and (.*) \(mismatched types (\w+) and (\w+)\)$`)
	// conflicting matches CUE's message for two different values.
	conflicting = regexp.MustCompile(`^conflicting values (.*) and (.*)$`)
	// reference matches CUE's message for a name that nothing declares.
	reference = regexp.MustCompile(`^reference "([^"]+)" not found$`)
	// undefined matches the cause CUE gives for a reference to a field
	// that no file sets, such as defaults.exclusions.
	undefined = regexp.MustCompile(`(?:undefined field|cannot reference optional field): (\S+)`)
)

// kindWords name CUE's basic kinds for people.
var kindWords = map[string]string{
	"string": "a quoted string",
	"int":    "a whole number",
	"number": "a number",
	"float":  "a number",
	"bool":   "true or false",
}

// unquotedFits says whether s, the text of a quoted string, is a value of
// CUE's kind (a number, true or false) written in quotes by mistake.
func unquotedFits(s, kind string) bool {
	switch kind {
	case "bool":
		return s == "true" || s == "false"
	case "int":
		_, err := strconv.Atoi(s)
		return err == nil
	default:
		_, err := strconv.ParseFloat(s, 64)
		return err == nil
	}
}

// isLiteral says whether s, a value in a CUE message, is one the files
// wrote rather than a type or a constraint of the schema.
func isLiteral(s string) bool {
	if _, ok := kindWords[s]; ok || s == "" {
		return false
	}
	return !strings.ContainsAny(s[:1], "=<>!") && !strings.HasPrefix(s, "[...")
}

// patternHints say in words what the schema's other patterns want; %s is
// the value.
var patternHints = map[string]string{
	`^([01][0-9]|2[0-3]):[0-5][0-9]$`:                `invalid value %s: use a time of day as HH:MM, e.g. "22:00"`,
	`^[a-z0-9][a-z0-9._-]*$`:                         "invalid value %s: use lower-case letters, digits, '.', '_' and '-'",
	`^[A-Za-z0-9][A-Za-z0-9._-]*$`:                   "invalid value %s: use letters, digits, '.', '_' and '-'",
	`^CVE-[0-9]{4}-[0-9]{4,}$`:                       `invalid value %s: use a CVE id such as "CVE-2024-6387"`,
	`^(([0-9]+[.]?[0-9]*|[.][0-9]+)[dhm])+$`:         `invalid duration %s: use a number followed by d, h or m (e.g. "4h", "1d12h")`,
	`^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]`: "invalid date %s: use YYYY-MM-DD or an RFC 3339 time such as 2026-11-20T12:00:00Z",

	// #AgentVersion
	`^(0|[1-9][0-9]*)[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*)$`: `invalid version %s: use a release version MAJOR.MINOR.PATCH, e.g. "1.4.2"`,
}

// isShapeError says whether e is a duration or a date of the wrong
// shape.
func isShapeError(e errors.Error) bool {
	format, args := e.Msg()
	m := outOfBound.FindStringSubmatch(fmt.Sprintf(format, args...))
	if m == nil {
		return false
	}
	h, ok := patternHint(m[2])
	return ok && (strings.HasPrefix(h, "invalid duration") || strings.HasPrefix(h, "invalid date"))
}

// patternHint returns the hint of pattern, matching the date's long
// pattern by its start.
func patternHint(pattern string) (string, bool) {
	for p, h := range patternHints {
		if pattern == p || strings.HasPrefix(p, `^[0-9]{4}`) && strings.HasPrefix(pattern, p) {
			return h, true
		}
	}
	return "", false
}

// rangeHints say what a number outside its bounds should be, by field.
var rangeHints = map[string]string{
	"minSuccess":    "use a fraction from 0 to 1, e.g. 0.95",
	"maxFailures":   "use a fraction from 0 to 1, e.g. 0.05",
	"minEPSS":       "use a probability from 0 to 1, e.g. 0.5",
	"minCVSS":       "use a CVSS score from 0 to 10, e.g. 7.0",
	"week":          "use the week of the month, from 1 to 5",
	"offsetDays":    "use a number of days from -31 to 31",
	"maxConcurrent": "use a number of endpoints, or leave it out for no cap",
}

// examples are a value to write for a field, by its generic path (see
// genericPath).
var examples = map[string]string{
	"client.name":                       "Acme Dental",
	"client.timezone":                   "America/Chicago",
	"rings[].name":                      "canary",
	"rings[].window":                    "weeknights",
	"windows.*.start":                   "22:00",
	"windows.*.duration":                "4h",
	"windows.*.monthly.weekday":         "tue",
	"freezes[].from":                    "2026-12-28",
	"freezes[].until":                   "2027-01-04",
	"resume[].after":                    "2026-11-20T12:00:00Z",
	"staleAfter":                        "7d",
	"rings[].soak":                      "24h",
	"rings[].rebootDeadline":            "24h",
	"baseline.approve[].minAge":         "2d",
	"exclusions[].until":                "2026-12-31",
	"exclusions[].reason":               "breaks the line-of-business app",
	"baseline.approve[].releasedBefore": "2026-11-11",
	"agent.version":                     "1.4.2",
	"rings[].agent.version":             "1.4.2",
}

// genericPath writes a dotted path with list indexes as [] and the names
// of windows, labels and sla entries as *: rings.1.window becomes
// rings[].window.
func genericPath(path string) string {
	segs := strings.Split(path, ".")
	var b strings.Builder
	for i, s := range segs {
		switch _, err := strconv.Atoi(s); {
		case err == nil:
			b.WriteString("[]")
			continue
		case i > 0 && (segs[i-1] == "windows" || segs[i-1] == "labels"):
			s = "*"
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// lastField is the last field name of a dotted path, skipping indexes.
func lastField(path string) string {
	segs := strings.Split(path, ".")
	for i := len(segs) - 1; i >= 0; i-- {
		if _, err := strconv.Atoi(segs[i]); err != nil {
			return segs[i]
		}
	}
	return ""
}

// example returns `field: "value"` to show for the field at path, or "".
func (ev *evaluation) example(path string) string {
	g := genericPath(path)
	// A default looks like the client's field it stands for.
	if rest, ok := strings.CutPrefix(g, "defaults.ring."); ok {
		g = "rings[]." + rest
	} else {
		g = strings.TrimPrefix(g, "defaults.")
	}
	v, ok := examples[g]
	switch {
	case g == "client.id":
		v, ok = ev.c.id, true
	case g == "sla.knownExploited":
		v, ok = "14d", true
	case !ok && strings.HasPrefix(g, "sla."):
		v, ok = "30d", true
	}
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s: %q", lastField(path), v)
}

// describe says in the project's words what the CUE error e at path
// means and what to do, given the position at the problem will be shown.
func (ev *evaluation) describe(path string, e errors.Error, at schema.Pos) string {
	format, args := e.Msg()
	msg := fmt.Sprintf(format, args...)
	switch {
	case isRequired(e):
		return ev.missing(path)
	case strings.HasPrefix(format, "error in call to "):
		return ev.callError(path, msg, e)
	case isConflict(e) && !mismatch.MatchString(msg):
		return ev.conflict(path, msg, e, at)
	case reference.MatchString(msg):
		name := reference.FindStringSubmatch(msg)[1]
		if near := nearest(name, ev.topFields()); near != "" {
			return fmt.Sprintf("%s: did you mean %s?", msg, near)
		}
		return fmt.Sprintf("%s: a word that is a value is quoted, as in %q", msg, name)
	case undefined.MatchString(msg):
		name := undefined.FindStringSubmatch(msg)[1]
		if name == lastField(path) {
			return fmt.Sprintf("defaults.%s is not set in the root files (CUE: %s): write the client's own %s here, or set defaults: %s in the root files", path, msg, name, path)
		}
		return msg + ": the value refers to a field no file sets; set that field, or write the value here"
	case notEmpty.MatchString(msg):
		if ex := ev.example(path); ex != "" {
			return "empty: write it out, e.g. " + ex
		}
		return "empty: write it out"
	}
	if m := mismatch.FindStringSubmatch(msg); m != nil {
		// One side is what the files wrote, the other what the schema
		// wants: a type (string), a constraint (=~"..."), a list type.
		value, want, wantKind := m[1], m[2], m[4]
		if !isLiteral(value) {
			value, want, wantKind = want, value, m[3]
		}
		if strings.HasPrefix(want, "[") && !strings.HasPrefix(value, "[") {
			return fmt.Sprintf("invalid value %s: want a list, e.g. [%s]", value, value)
		}
		if words, ok := kindWords[wantKind]; ok && isLiteral(value) {
			if wantKind == "string" {
				// A date or a word written without quotes is arithmetic
				// or a reference to CUE: show what was written.
				for _, c := range ev.conjuncts(path) {
					if c.text != "" && c.text != value && !strings.HasPrefix(c.text, `"`) {
						return fmt.Sprintf("invalid value %s: want a quoted string, e.g. %s: %q (without quotes, CUE computes %s = %s)", c.text, lastField(path), c.text, c.text, value)
					}
				}
			}
			s := fmt.Sprintf("invalid value %s: want %s", value, words)
			if unq, err := strconv.Unquote(value); err == nil && wantKind != "string" && unquotedFits(unq, wantKind) {
				return s + fmt.Sprintf(": write it without quotes, %s: %s", lastField(path), unq)
			}
			if ex := ev.example(path); ex != "" && wantKind == "string" {
				s += ", e.g. " + ex
			}
			return s
		}
	}
	if m := outOfBound.FindStringSubmatch(msg); m != nil {
		if e := enumPattern.FindStringSubmatch(m[2]); e != nil {
			words := strings.Split(e[1], "|")
			s := fmt.Sprintf("invalid value %s: use one of %s", m[1], strings.Join(words, ", "))
			if v, err := strconv.Unquote(m[1]); err == nil {
				if near := nearest(v, words); near != "" {
					s += fmt.Sprintf("; did you mean %q?", near)
				}
			}
			return s
		}
		if hint, ok := patternHint(m[2]); ok {
			return fmt.Sprintf(hint, m[1])
		}
		return msg
	}
	if m := outOfRange.FindStringSubmatch(msg); m != nil {
		side := "above"
		if strings.HasPrefix(m[2], ">") {
			side = "below"
		}
		s := fmt.Sprintf("%s is %s %s", m[1], side, m[3])
		if hint, ok := rangeHints[lastField(path)]; ok {
			s += ": " + hint
		}
		return s
	}
	return msg
}

// topFields lists the top-level fields of the schema's #Fleet.
func (ev *evaluation) topFields() []string {
	if !ev.fleet.Exists() {
		return nil
	}
	return fieldNames(ev.fleet)
}

// missing says that the required field at path is missing, with an
// example.
func (ev *evaluation) missing(path string) string {
	if ex := ev.example(path); ex != "" {
		return "missing: add it, e.g. " + ex
	}
	return "missing: this field is required"
}

// callError explains a failed call of a builtin such as list.Concat,
// keeping CUE's cause, which is what the technician must fix.
func (ev *evaluation) callError(path, msg string, e errors.Error) string {
	full := e.Error()
	_, cause, _ := strings.Cut(full, msg)
	cause = strings.TrimPrefix(cause, ": ")
	// A cause about an argument starts with its index ("0: ...").
	if i := strings.Index(cause, ": "); i > 0 {
		if _, err := strconv.Atoi(cause[:i]); err == nil {
			cause = cause[i+2:]
		}
	}
	if cause == "" {
		return msg
	}
	if m := undefined.FindStringSubmatch(cause); m != nil && strings.HasPrefix(msg, "error in call to list.Concat") {
		return fmt.Sprintf("list.Concat cannot extend defaults.%s: the root files do not set it (CUE: %s: %s); write %s: [...] without list.Concat, or set defaults: %s: [...] in the root files",
			path, msg, cause, lastField(path), path)
	}
	return msg + ": " + cause
}

// conflict explains two values that cannot be unified at path, naming
// where the other one is written; at is where the problem is shown.
func (ev *evaluation) conflict(path, msg string, e errors.Error, at schema.Pos) string {
	var mine, others []conjunct
	for _, c := range ev.conjuncts(path) {
		if c.pos.File == at.File && c.pos.Line == at.Line {
			mine = append(mine, c)
		} else {
			others = append(others, c)
		}
	}
	if len(others) == 0 {
		// The conflict is deeper than path's own conjuncts: CUE's
		// positions name the values.
		for _, tp := range e.InputPositions() {
			if p := ev.repoPos(tp); p.File != "" && (p.File != at.File || p.Line != at.Line) {
				others = append(others, conjunct{pos: p})
			}
		}
	}
	what := "this value contradicts another"
	if m := conflicting.FindStringSubmatch(msg); m != nil {
		what = fmt.Sprintf("%s contradicts %s", m[1], m[2])
	} else if strings.HasPrefix(msg, "incompatible list lengths") {
		what = "this list contradicts another of a different length"
	}
	if len(mine) > 0 && mine[0].text != "" && len(others) > 0 && others[0].text != "" {
		what = fmt.Sprintf("%s contradicts %s", mine[0].text, others[0].text)
	}
	if len(others) == 0 {
		return what + ": a field holds one value; remove one of them"
	}
	var where []string
	for _, c := range others {
		if !slices.Contains(where, c.pos.String()) {
			where = append(where, c.pos.String())
		}
	}
	what += " (conflicts with " + strings.Join(where, ", ") + ")"
	inClient := func(p schema.Pos) bool { return strings.HasPrefix(p.File, ev.c.dir+"/") }
	switch {
	case !inClient(at) || inClient(others[0].pos):
		return what + ": a field holds one value; remove one of them"
	case strings.HasPrefix(path, "windows."):
		return what + ": a client cannot change a window the root files define; define the client's own window under another name and name that one in its rings"
	case strings.HasPrefix(path, "defaults."):
		top, _, _ := strings.Cut(strings.TrimPrefix(path, "defaults."), ".")
		return what + fmt.Sprintf(": a client replaces a default by writing %s itself, not defaults.%s", top, top)
	default:
		return what + ": a client cannot change a value the root files set; remove it here, or move the root files' value under defaults so that each client can replace it"
	}
}

// nearest returns the word of words closest to s when it is close
// enough to be what was meant (a typo, a letter missing or swapped), or
// "".
func nearest(s string, words []string) string {
	best, bestDist := "", 0
	for _, w := range words {
		if w == s {
			return ""
		}
		d := editDistance(strings.ToLower(s), strings.ToLower(w))
		limit := 2
		if len(w) <= 4 {
			limit = 1
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = w, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b: the
// least number of letters inserted, deleted, replaced or swapped with
// their neighbour to turn one into the other.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
