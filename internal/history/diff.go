package history

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/schema"
)

// Op says how a change touches a policy entry.
type Op string

// Change operations.
const (
	// Added: the entry is new in the commit.
	Added Op = "+"
	// Removed: the entry is gone in the commit.
	Removed Op = "-"
	// Changed: the entry exists on both sides with different fields.
	Changed Op = "~"
	// Refused: the controller refuses the commit for the client and keeps
	// its last good policy.
	Refused Op = "!"
)

// Change is one semantic change of a client's policy.
type Change struct {
	Op Op `json:"op"`
	// Kind is the policy entry the change is about: client, name, timezone,
	// mode, window, ring, rings, approve, require, exclusion, freeze,
	// resume, rollback, emergency, sla, staleAfter, or refused.
	Kind string `json:"kind"`
	// Text says the change in words: "exclusion KB5034441 on hostnames
	// ACME-SQL01 until 2026-12-31 (reason: breaks the EHR app, ticket
	// PSA-1234)", "ring pilot: soak 72h → 48h".
	Text string `json:"text"`
	// names are the update ids and globs the changed entry names (on either
	// side of the change), for filtering by update.
	names []string
}

// String formats c as "op text", the form the text and markdown histories
// use.
func (c Change) String() string { return string(c.Op) + " " + c.Text }

// Names reports whether the change names update: an exclusion, requirement,
// resume, rollback or emergency naming it by id, or a match glob (of those or of an approve
// rule) that matches it. For a package update "name@version" the glob is
// tried on the name too, as the planner matches globs on names.
func (c Change) Names(update string) bool {
	name, _, _ := strings.Cut(update, "@")
	for _, n := range c.names {
		if strings.EqualFold(n, update) {
			return true
		}
		for _, s := range []string{update, name} {
			if ok, err := path.Match(n, s); err == nil && ok {
				return true
			}
		}
	}
	return false
}

// Diff returns the semantic changes from client a to client b, in a fixed
// order: identity, mode, staleAfter, sla, windows, rings, approve rules,
// requirements, exclusions, freezes, resumes, rollbacks. Either may be nil: a nil a
// lists every entry of b as added after a "client added" line; a nil b is
// one "client removed" line. Positions are ignored, so moving an entry
// within a file is no change.
func Diff(a, b *schema.Client) []Change {
	switch {
	case a == nil && b == nil:
		return nil
	case b == nil:
		return []Change{{Op: Removed, Kind: "client", Text: fmt.Sprintf("client %s %q", a.ID, a.Name)}}
	}
	var d differ
	if a == nil {
		// A new client lists its whole policy as added, so the commit that
		// brought it in shows everything it started with.
		d.add(Added, "client", fmt.Sprintf("client %s %q (%s)", b.ID, b.Name, b.Timezone))
		d.add(Added, "mode", "mode "+string(b.Mode))
		if b.StaleAfter > 0 {
			d.add(Added, "staleAfter", "staleAfter "+duration(b.StaleAfter))
		}
		a = &schema.Client{ID: b.ID, Name: b.Name, Timezone: b.Timezone, Mode: b.Mode, StaleAfter: b.StaleAfter}
	}
	if a.Name != b.Name {
		d.add(Changed, "name", fmt.Sprintf("name %q → %q", a.Name, b.Name))
	}
	if a.Timezone != b.Timezone {
		d.add(Changed, "timezone", fmt.Sprintf("timezone %s → %s", a.Timezone, b.Timezone))
	}
	if a.Mode != b.Mode {
		d.add(Changed, "mode", fmt.Sprintf("mode %s → %s", none(string(a.Mode)), b.Mode))
	}
	if a.StaleAfter != b.StaleAfter {
		d.add(Changed, "staleAfter", fmt.Sprintf("staleAfter %s → %s", duration(a.StaleAfter), duration(b.StaleAfter)))
	}
	d.sla(a.SLA, b.SLA)
	d.exploitedSLA(a.KnownExploitedSLA, b.KnownExploitedSLA)
	d.windows(a.Windows, b.Windows)
	d.rings(a.Rings, b.Rings)
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	diffList(&d, "approve", a.Baseline.Approve, b.Baseline.Approve, func(r schema.ApproveRule) entry {
		return entry{key: r.Name, title: "approve rule " + cmpOr(r.Name, "(unnamed)"), fields: approveFields(r, loc), names: nonEmpty(r.Match)}
	})
	diffList(&d, "require", a.Baseline.Require, b.Baseline.Require, func(r schema.Requirement) entry {
		return entry{key: r.ID + "\x00" + r.Source + "\x00" + r.Match, title: "requirement " + named(r.ID, r.Source, r.Match),
			fields: []field{{"minVersion", r.MinVersion}}, names: nonEmpty(r.ID, r.Match)}
	})
	diffList(&d, "exclusion", a.Exclusions, b.Exclusions, func(x schema.Exclusion) entry {
		title := "exclusion " + named(x.Update, x.Source, x.Match) + " on " + selector(x.Select)
		text := title
		if u := until(x.Until, loc); u != "" {
			text += " until " + u
		}
		text += " (reason: " + x.Reason
		if x.Ticket != "" {
			text += ", ticket " + x.Ticket
		}
		text += ")"
		return entry{key: title, title: title, text: text, fields: []field{
			{"until", until(x.Until, loc)}, {"reason", x.Reason}, {"ticket", x.Ticket},
		}, names: nonEmpty(x.Update, x.Match)}
	})
	diffList(&d, "freeze", a.Freezes, b.Freezes, func(f schema.Freeze) entry {
		title := "freeze on " + selector(f.Select) + " from " + instant(f.From, loc)
		text := title + " until " + until(f.Until, loc)
		if f.Reason != "" {
			text += " (reason: " + f.Reason + ")"
		}
		return entry{key: title, title: title, text: text, fields: []field{{"until", until(f.Until, loc)}, {"reason", f.Reason}}}
	})
	diffList(&d, "resume", a.Resume, b.Resume, func(r schema.Resume) entry {
		title := "resume " + named(r.Update, r.Source, r.Match)
		if r.Ring != "" {
			title += " in ring " + r.Ring
		}
		return entry{key: title, title: title, fields: []field{{"after", instant(r.After, loc)}}, names: nonEmpty(r.Update, r.Match)}
	})
	diffList(&d, "rollback", a.Rollback, b.Rollback, func(r schema.Rollback) entry {
		title := "rollback " + r.Update + " on " + selector(r.Select)
		text := title + " (reason: " + r.Reason
		if r.Ticket != "" {
			text += ", ticket " + r.Ticket
		}
		text += ")"
		return entry{key: title, title: title, text: text, fields: []field{{"reason", r.Reason}, {"ticket", r.Ticket}}, names: nonEmpty(r.Update)}
	})
	diffList(&d, "emergency", a.Emergency, b.Emergency, func(e schema.Emergency) entry {
		title := "emergency " + e.Update
		var lets []string
		if e.SkipSoak {
			lets = append(lets, "skips soaks")
		}
		if e.IgnoreWindows {
			lets = append(lets, "ignores windows")
		}
		if e.IgnoreFreezes {
			lets = append(lets, "ignores freezes")
		}
		text := title
		if len(lets) > 0 {
			text += " " + strings.Join(lets, ", ")
		}
		text += " until " + until(e.Until, loc) + " (reason: " + e.Reason + ")"
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return ""
		}
		return entry{key: title, title: title, text: text, fields: []field{
			{"until", until(e.Until, loc)}, {"reason", e.Reason},
			{"skipSoak", yes(e.SkipSoak)}, {"ignoreWindows", yes(e.IgnoreWindows)}, {"ignoreFreezes", yes(e.IgnoreFreezes)},
		}, names: nonEmpty(e.Update)}
	})
	return d.changes
}

// differ collects changes.
type differ struct{ changes []Change }

func (d *differ) add(op Op, kind, text string, names ...string) {
	d.changes = append(d.changes, Change{Op: op, Kind: kind, Text: text, names: names})
}

// field is one named field of a policy entry, formatted; "" means unset.
type field struct{ name, value string }

// entry is a policy entry reduced to what a diff compares.
type entry struct {
	// key identifies the entry across commits.
	key string
	// title names the entry in a change line.
	title string
	// text, when set, describes an added or removed entry instead of the
	// title and its fields.
	text   string
	fields []field
	names  []string
}

// describe formats an entry's set fields after its title, for an added or
// removed line.
func (e entry) describe() string {
	if e.text != "" {
		return e.text
	}
	var parts []string
	for _, f := range e.fields {
		if f.value != "" {
			parts = append(parts, f.name+" "+f.value)
		}
	}
	if len(parts) == 0 {
		return e.title
	}
	return e.title + ": " + strings.Join(parts, ", ")
}

// diffList diffs two lists of entries matched by key; entries with the same
// key pair up in order.
func diffList[T any](d *differ, kind string, a, b []T, conv func(T) entry) {
	olds := make(map[string][]entry)
	for _, x := range a {
		e := conv(x)
		olds[e.key] = append(olds[e.key], e)
	}
	var added []entry
	for _, x := range b {
		e := conv(x)
		if q := olds[e.key]; len(q) > 0 {
			olds[e.key] = q[1:]
			d.changed(kind, q[0], e)
			continue
		}
		added = append(added, e)
	}
	// Removals come first, in the old order, then additions in the new.
	for _, x := range a {
		e := conv(x)
		if q := olds[e.key]; len(q) > 0 {
			olds[e.key] = q[1:]
			d.add(Removed, kind, e.describe(), e.names...)
		}
	}
	for _, e := range added {
		d.add(Added, kind, e.describe(), e.names...)
	}
}

// changed adds one change line listing the fields that differ between two
// versions of an entry, if any.
func (d *differ) changed(kind string, a, b entry) {
	var parts []string
	for i, f := range b.fields {
		old := ""
		if i < len(a.fields) {
			old = a.fields[i].value
		}
		if old != f.value {
			parts = append(parts, fmt.Sprintf("%s %s → %s", f.name, none(old), none(f.value)))
		}
	}
	if len(parts) > 0 {
		d.add(Changed, kind, b.title+": "+strings.Join(parts, ", "), slices.Concat(a.names, b.names)...)
	}
}

func (d *differ) sla(a, b map[string]time.Duration) {
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y string) int { return schema.SeverityRank(y) - schema.SeverityRank(x) })
	for _, k := range keys {
		old, inA := a[k]
		nu, inB := b[k]
		switch {
		case !inA:
			d.add(Added, "sla", fmt.Sprintf("sla %s %s", k, duration(nu)))
		case !inB:
			d.add(Removed, "sla", fmt.Sprintf("sla %s %s", k, duration(old)))
		case old != nu:
			d.add(Changed, "sla", fmt.Sprintf("sla %s: %s → %s", k, duration(old), duration(nu)))
		}
	}
}

func (d *differ) exploitedSLA(a, b *schema.ExploitedSLA) {
	old, nu := exploitedSLA(a), exploitedSLA(b)
	switch {
	case old == nu:
	case old == "":
		d.add(Added, "sla", "sla knownExploited "+nu)
	case nu == "":
		d.add(Removed, "sla", "sla knownExploited "+old)
	default:
		d.add(Changed, "sla", fmt.Sprintf("sla knownExploited: %s → %s", old, nu))
	}
}

// exploitedSLA formats sla.knownExploited the way the policy wrote it; ""
// when it is not set.
func exploitedSLA(x *schema.ExploitedSLA) string {
	switch {
	case x == nil:
		return ""
	case x.CISA:
		return "cisa"
	}
	return cmpOr(duration(x.Within), "0d")
}

func (d *differ) windows(a, b map[string]schema.Window) {
	conv := func(w schema.Window) entry {
		when := strings.Join(w.Days, ",")
		if w.Monthly != nil {
			when = fmt.Sprintf("%s %s of the month", ordinal(w.Monthly.Week), w.Monthly.Weekday)
			if w.Monthly.OffsetDays != 0 {
				when += fmt.Sprintf(" %+d days", w.Monthly.OffsetDays)
			}
		}
		return entry{key: w.Name, title: "window " + w.Name, fields: []field{
			{"on", when}, {"start", fmt.Sprintf("%02d:%02d", w.Start/60, w.Start%60)}, {"for", hours(w.Duration)},
		}}
	}
	sorted := func(m map[string]schema.Window) []schema.Window {
		var ws []schema.Window
		for _, k := range slices.Sorted(maps.Keys(m)) {
			w := m[k]
			w.Name = k
			ws = append(ws, w)
		}
		return ws
	}
	diffList(d, "window", sorted(a), sorted(b), conv)
}

func (d *differ) rings(a, b []schema.Ring) {
	diffList(d, "ring", a, b, func(r schema.Ring) entry {
		return entry{key: r.Name, title: "ring " + r.Name, fields: []field{
			{"select", selector(r.Select)},
			{"window", r.Window},
			{"soak", hours(r.Soak)},
			{"minSuccess", strconv.FormatFloat(r.MinSuccess, 'g', -1, 64)},
			{"maxFailures", strconv.FormatFloat(r.MaxFailures, 'g', -1, 64)},
			{"maxConcurrent", count(r.MaxConcurrent)},
			{"reboot", string(r.Reboot)},
			{"rebootDeadline", hours(r.RebootDeadline)},
		}}
	})
	names := func(rs []schema.Ring) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	// A reordering matters (an update reaches ring k after ring k-1), but
	// additions and removals already say it; only report a pure reorder.
	an, bn := names(a), names(b)
	if !slices.Equal(an, bn) && slices.Equal(slices.Sorted(slices.Values(an)), slices.Sorted(slices.Values(bn))) {
		d.add(Changed, "rings", fmt.Sprintf("ring order %s → %s", strings.Join(an, ", "), strings.Join(bn, ", ")))
	}
}

func approveFields(r schema.ApproveRule, loc *time.Location) []field {
	exploited := ""
	if r.KnownExploited != nil {
		exploited = strconv.FormatBool(*r.KnownExploited)
	}
	released := ""
	if !r.ReleasedBefore.IsZero() {
		released = instant(r.ReleasedBefore, loc)
	}
	return []field{
		{"source", strings.Join(r.Source, ",")},
		{"category", strings.Join(r.Category, ",")},
		{"minSeverity", r.MinSeverity},
		{"minCVSS", number(r.MinCVSS)},
		{"minEPSS", number(r.MinEPSS)},
		{"knownExploited", exploited},
		{"cve", strings.Join(r.CVE, ",")},
		{"match", r.Match},
		{"minAge", duration(r.MinAge)},
		{"releasedBefore", released},
	}
}

// named says what an exclusion, requirement or resume names: the update
// id, or "source match".
func named(update, source, match string) string {
	if update != "" {
		return update
	}
	return strings.TrimSpace(source + " " + cmpOr(match, "*"))
}

// selector describes which endpoints a selector picks.
func selector(s schema.Selector) string {
	var parts []string
	if len(s.Labels) > 0 {
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			ls = append(ls, k+"="+s.Labels[k])
		}
		parts = append(parts, "labels "+strings.Join(ls, ","))
	}
	if len(s.Hostnames) > 0 {
		parts = append(parts, "hostnames "+strings.Join(s.Hostnames, ","))
	}
	if len(s.Endpoints) > 0 {
		parts = append(parts, "endpoints "+strings.Join(s.Endpoints, ","))
	}
	if len(s.OS) > 0 {
		parts = append(parts, "os "+strings.Join(s.OS, ","))
	}
	if len(parts) == 0 {
		return "every endpoint"
	}
	return strings.Join(parts, " and ")
}

// until formats an exclusive end the way the policy wrote it: the date
// "2026-12-31" for the local midnight that ends that day, else date and
// time in the client's zone.
func until(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	if l := t.In(loc); l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 {
		return l.AddDate(0, 0, -1).Format(time.DateOnly)
	}
	return instant(t, loc)
}

// instant formats t in the client's zone, as a date alone when it is
// local midnight.
func instant(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(loc)
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
		return t.Format(time.DateOnly)
	}
	return t.Format("2006-01-02 15:04 MST")
}

// duration formats an age, SLA or staleAfter the way policies write them:
// whole days as "30d", else hours and minutes ("36h", "1h30m"); "" for
// zero.
func duration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	var b strings.Builder
	if days := d / (24 * time.Hour); days > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", days)
	}
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if b.Len() == 0 {
		return d.String()
	}
	return b.String()
}

// hours formats a soak, reboot deadline or window length the way policies
// write them, in hours ("72h", "1h30m"); "" for zero.
func hours(d time.Duration) string {
	if d > 0 && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return duration(d)
}

func number(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func count(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	case -1:
		return "last"
	}
	return strconv.Itoa(n) + "th"
}

func none(s string) string { return cmpOr(s, "(none)") }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
