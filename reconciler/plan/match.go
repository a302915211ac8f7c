package plan

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/version"
	"github.com/patchline/patchline/schema"
)

// selects reports whether s picks ep: every set field must match, and an
// empty selector picks every endpoint.
func selects(s *schema.Selector, ep *protocol.Endpoint) bool {
	for k, v := range s.Labels {
		if got, ok := ep.Labels[k]; !ok || got != v {
			return false
		}
	}
	if len(s.Hostnames) > 0 && !slices.ContainsFunc(s.Hostnames, func(h string) bool { return strings.EqualFold(h, ep.Hostname) }) {
		return false
	}
	if len(s.Endpoints) > 0 && !slices.Contains(s.Endpoints, ep.ID) {
		return false
	}
	if len(s.OS) > 0 && !slices.ContainsFunc(s.OS, func(f string) bool { return strings.EqualFold(f, ep.OS.Family) }) {
		return false
	}
	return true
}

// glob matches name against a path.Match pattern; an empty pattern matches
// every name.
func glob(pattern, name string) (bool, error) {
	if pattern == "" {
		return true, nil
	}
	ok, err := path.Match(pattern, name)
	if err != nil {
		return false, fmt.Errorf("match %q: %w", pattern, err)
	}
	return ok, nil
}

// desire is whether a client wants an update, and which rule says so. It
// depends only on the update and the client's baseline, so it is computed
// once per (client, update id).
type desire struct {
	// note names the rule and reason decisions cite; for an update nothing
	// asks for it says so.
	note
	desired bool
	// cite is the requirement or approve rule that made the update desired,
	// or, when an approve rule matches all but its minAge, the one whose
	// minAge elapses first (cite.At says when).
	cite *Citation
	// since is when the update became desired: its release for a
	// requirement, release+minAge for an approve rule.
	since time.Time
	// weighed is how many of the baseline's approve rules, from the
	// first, were weighed against the update: none when a requirement
	// names it, up to the one that approves it, else all of them.
	weighed int
}

// desireFor decides whether b wants u at now. Requirements are checked
// first, then approve rules in order; the first that matches is cited.
func desireFor(b *schema.Baseline, u *protocol.Update, now time.Time) (desire, error) {
	for i := range b.Require {
		r := &b.Require[i]
		ok, err := requires(r, u)
		if err != nil {
			return desire{}, fmt.Errorf("requirement at %s: %w", r.Pos, err)
		}
		if ok {
			c := &Citation{Kind: "require", Name: requirementName(r), Rule: r.Pos.Rule(), Detail: "required by the baseline: " + requirementName(r)}
			return desire{note: note{rule: c.Rule, reason: c.Detail}, desired: true, since: u.ReleasedAt(now), cite: c}, nil
		}
	}
	d := desire{note: note{reason: "no approve rule or requirement matches"}, weighed: len(b.Approve)}
	for i := range b.Approve {
		a := &b.Approve[i]
		ok, err := approves(a, u, now)
		if err != nil {
			return desire{}, fmt.Errorf("approve rule %q at %s: %w", a.Name, a.Pos, err)
		}
		if !ok {
			continue
		}
		// An update whose release time is not known (an offline snapshot
		// of a source that gives none) counts as released now.
		at := u.ReleasedAt(now).Add(a.MinAge)
		if !at.After(now) {
			c := &Citation{Kind: "approve", Name: a.Name, Rule: a.Pos.Rule(), Detail: "approved by rule " + quote(a.Name)}
			return desire{note: note{rule: c.Rule, reason: c.Detail}, desired: true, since: at, cite: c, weighed: i + 1}, nil
		}
		if d.cite == nil || at.Before(*d.cite.At) {
			c := &Citation{Kind: "approve", Name: a.Name, Rule: a.Pos.Rule(), At: timePtr(at),
				Detail: fmt.Sprintf("approve rule %q approves it once it is %s old, at %s", a.Name, days(a.MinAge), at.UTC().Format(time.RFC3339))}
			d = desire{note: note{rule: c.Rule, reason: c.Detail, at: c.At}, cite: c, weighed: len(b.Approve)}
		}
	}
	return d, nil
}

// requires reports whether requirement r names u: by id (an update id or
// name), or by source, name glob and minimum version.
func requires(r *schema.Requirement, u *protocol.Update) (bool, error) {
	if r.ID != "" {
		return r.ID == u.ID || r.ID == u.Name, nil
	}
	if r.Source == "" || r.Source != u.Source {
		return false, nil
	}
	ok, err := glob(r.Match, u.Name)
	if !ok || err != nil {
		return false, err
	}
	return r.MinVersion == "" || version.Compare(u.Source, u.Version, r.MinVersion) >= 0, nil
}

func requirementName(r *schema.Requirement) string {
	if r.ID != "" {
		return r.ID
	}
	name := r.Source + ":" + cmpOr(r.Match, "*")
	if r.MinVersion != "" {
		name += " >= " + r.MinVersion
	}
	return name
}

// approves reports whether every set field of a matches u at now, leaving
// out MinAge, which the caller weighs. The data fields weigh the update's
// effective values, those public feeds give where the controller applied
// them: severity, CVSS, EPSS, known exploitation and the CVEs it fixes.
func approves(a *schema.ApproveRule, u *protocol.Update, now time.Time) (bool, error) {
	switch {
	case len(a.Source) > 0 && !slices.Contains(a.Source, u.Source),
		len(a.Category) > 0 && !slices.Contains(a.Category, u.Category),
		a.MinSeverity != "" && schema.SeverityRank(u.EffectiveSeverity()) < schema.SeverityRank(a.MinSeverity),
		a.MinCVSS > 0 && u.EffectiveCVSS() < a.MinCVSS,
		a.MinEPSS > 0 && u.EPSS() < a.MinEPSS,
		a.KnownExploited != nil && *a.KnownExploited != u.EffectiveKnownExploited(),
		len(a.CVE) > 0 && !fixesAny(u, a.CVE),
		!a.ReleasedBefore.IsZero() && !u.ReleasedAt(now).Before(a.ReleasedBefore):
		return false, nil
	}
	return glob(a.Match, u.Name)
}

// fixesAny reports whether u fixes any of cves.
func fixesAny(u *protocol.Update, cves []string) bool {
	return slices.ContainsFunc(u.AllCVEs(), func(c string) bool {
		return slices.ContainsFunc(cves, func(want string) bool { return strings.EqualFold(c, want) })
	})
}

// names reports whether an exclusion or resume entry names u: by Update (an
// update id or name), or by Source and a Match glob on the name.
func names(update, source, match string, u *protocol.Update) (bool, error) {
	if update != "" {
		return update == u.ID || update == u.Name, nil
	}
	if source == "" || source != u.Source {
		return false, nil
	}
	return glob(match, u.Name)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// days formats a duration in days when it is whole days, as policies write
// them ("7d"), and as a Go duration otherwise.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
