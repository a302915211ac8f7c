package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

// Blame names the commit that last changed a rule's line, for `why`.
type Blame func(rule string) string

// Why writes the chain of facts behind one decision, as `patchctl why`
// prints it. blame, when not nil, adds the commit that last changed each
// cited line.
func Why(w io.Writer, x *plan.Explanation, blame Blame) error {
	p := &printer{w: w}
	cite := func(rule string) string {
		if rule == "" {
			return ""
		}
		s := " at " + txt(rule)
		if blame != nil {
			if b := blame(rule); b != "" {
				s += "\n              last changed by " + txt(b)
			}
		}
		return s
	}
	p.f("%s / %s: %s\n", txt(x.Endpoint), txt(x.Update), x.Decision.Decision)
	p.f("  revision    %s, planned at %s\n", shortRev(x.Revision), stamp(x.Now))
	if !x.KnownClient {
		p.f("  client      %s is not in the fleet repo: no policy applies, no job is sent\n", txt(x.Client))
		return p.err
	}
	p.f("  client      %s\n", txt(x.Client))
	if x.Stale {
		p.f("  stale       the endpoint has not reported within staleAfter; it does not count towards ring progress\n")
	}
	if x.Ring != nil {
		p.f("  ring        %s (%s)%s\n", txt(x.Ring.Name), txt(x.Ring.Detail), cite(x.Ring.Rule))
	} else {
		p.f("  ring        none: no ring selects this endpoint\n")
	}
	switch {
	case x.Desire == nil:
		p.f("  desired     no: no approve rule or requirement matches the update\n")
	case !x.Desired:
		at := ""
		if x.Desire.At != nil {
			at = " from " + stamp(*x.Desire.At)
		}
		p.f("  desired     not yet: %s %q approves it%s%s\n", x.Desire.Kind, x.Desire.Name, at, cite(x.Desire.Rule))
	default:
		p.f("  desired     yes: %s %q%s%s\n", x.Desire.Kind, x.Desire.Name, detail(x.Desire.Detail), cite(x.Desire.Rule))
	}
	for i, line := range evidenceLines(x.Evidence) {
		label := "  evidence    "
		if i > 0 {
			label = "              "
		}
		p.f("%s%s\n", label, txt(line))
	}
	if x.Exclusion != nil {
		p.f("  exclusion   %s: %s%s\n", txt(x.Exclusion.Name), txt(x.Exclusion.Detail), cite(x.Exclusion.Rule))
	}
	if x.Freeze != nil {
		until := ""
		if x.Freeze.At != nil {
			until = " until " + stamp(*x.Freeze.At)
		}
		p.f("  freeze      %s%s%s\n", txt(x.Freeze.Detail), until, cite(x.Freeze.Rule))
	}
	if x.Resume != nil {
		p.f("  resume      %s: %s%s\n", txt(x.Resume.Name), txt(x.Resume.Detail), cite(x.Resume.Rule))
	}
	if x.Mode != nil {
		p.f("  mode        %s: %s%s\n", txt(x.Mode.Name), txt(x.Mode.Detail), cite(x.Mode.Rule))
	}
	if x.Rollback != nil {
		p.f("  rollback    %s: %s%s\n", txt(x.Rollback.Name), txt(x.Rollback.Detail), cite(x.Rollback.Rule))
	}
	if x.Emergency != nil {
		p.f("  emergency   %s: %s%s\n", txt(x.Emergency.Name), txt(x.Emergency.Detail), cite(x.Emergency.Rule))
	}
	if x.Reboot != nil {
		mode := ""
		if x.Reboot.Name != "" {
			mode = " (policy " + txt(x.Reboot.Name) + ")"
		}
		p.f("  reboot      %s%s%s\n", txt(x.Reboot.Detail), mode, cite(x.Reboot.Rule))
	}
	for i, r := range x.Rollouts {
		label := "  rollout    "
		if i > 0 {
			label = "             "
		}
		var facts []string
		facts = append(facts, fmt.Sprintf("%d/%d succeeded", r.Succeeded, r.Counted))
		if r.Failed > 0 {
			facts = append(facts, fmt.Sprintf("%d failed", r.Failed))
		}
		if r.EligibleAt != nil {
			facts = append(facts, "may start "+stamp(*r.EligibleAt))
		}
		if r.PassedAt != nil {
			facts = append(facts, "passed "+stamp(*r.PassedAt))
		}
		if r.Reason != "" {
			facts = append(facts, r.Reason)
		}
		p.f("%s %-8s %-11s %s\n", label, txt(r.Ring), r.State, txt(strings.Join(facts, "; ")))
	}
	if x.FailedAttempts > 0 {
		p.f("  attempts    %d failed attempt(s) not forgiven by a resume entry\n", x.FailedAttempts)
	}
	if x.Interruptions > 0 {
		label := "  attempts    "
		if x.FailedAttempts > 0 {
			label = "              "
		}
		p.f("%s%d interrupted (the agent stopped while installing): the inventory after it decides; the first is no failure, each later one is\n", label, x.Interruptions)
	}
	if x.Window != nil {
		state := "closed"
		if x.Window.Open && x.Window.Closes != nil {
			state = "open until " + stamp(*x.Window.Closes)
		}
		if x.Window.NextOpen != nil {
			state += ", next opens " + stamp(*x.Window.NextOpen)
		}
		p.f("  window      %s: %s%s\n", txt(x.Window.Name), state, cite(x.Window.Rule))
	}
	d := x.Decision
	p.f("  decision    %s", d.Decision)
	if d.Reason != "" {
		p.f(": %s", txt(d.Reason))
	}
	if d.EligibleAt != nil {
		p.f(" (eligible %s)", stamp(*d.EligibleAt))
	}
	p.f("%s\n", cite(d.Rule))
	return p.err
}

// evidenceLines says each fact of e and where it came from, one line
// each, in a fixed order.
func evidenceLines(e *plan.Evidence) []string {
	if e == nil {
		return nil
	}
	var lines []string
	if e.KnownExploited != nil {
		lines = append(lines, "knownExploited: "+exploitedText(e.KnownExploited))
	}
	if e.CVEs != nil {
		lines = append(lines, "cve: "+cveText(e.CVEs))
	}
	if e.CVSS != nil {
		lines = append(lines, "cvss: "+cvssText(e.CVSS))
	}
	if e.EPSS != nil {
		lines = append(lines, "epss: "+epssText(e.EPSS))
	}
	if e.Severity != nil {
		lines = append(lines, "severity: "+severityText(e.Severity))
	}
	if e.Released != nil {
		lines = append(lines, "released: "+releasedText(e.Released))
	}
	return lines
}

func cveText(c *plan.CVEEvidence) string {
	var parts []string
	if len(c.Reported) > 0 {
		parts = append(parts, strings.Join(c.Reported, ", ")+" (reported by the endpoint)")
	}
	if len(c.Added) > 0 {
		parts = append(parts, strings.Join(c.Added, ", ")+" ("+feedText(*c.AddedBy)+")")
	}
	if len(parts) == 0 {
		return "none reported or added by a feed"
	}
	return strings.Join(parts, "; ")
}

func cvssText(c *plan.ScoreEvidence) string {
	switch {
	case c.Value == 0:
		return "none (none reported, no NVD score)"
	case c.Source == plan.SourceEndpoint:
		return number(c.Value) + " (reported by the endpoint)"
	}
	version := ""
	if c.Version != "" {
		version = "CVSS " + c.Version
	}
	return number(c.Value) + " (" + joinSet(version, c.CVE, feedText(c.Provenance)) + ")"
}

func epssText(s *plan.ScoreEvidence) string {
	switch {
	case s.Value > 0:
		return number(s.Value) + " (" + joinSet(s.CVE, feedText(s.Provenance)) + ")"
	case s.Source != "":
		return "none (" + feedName(s.Source) + " scores none of its CVEs" + fetchedText(s.Provenance) + ")"
	}
	return "none (no EPSS feed applied)"
}

func severityText(s *plan.SeverityEvidence) string {
	switch s.From {
	case plan.SeverityFromCVSS:
		return s.Severity + " (derived from CVSS " + number(s.CVSS) + ")"
	case plan.SeverityFromVendor:
		return s.Severity + " (vendor)"
	}
	return "none (no vendor rating, no CVSS score)"
}

func releasedText(r *plan.ReleaseEvidence) string {
	if r.At == nil {
		return "unknown, counted as now"
	}
	day := r.At.UTC().Format(time.DateOnly)
	switch r.From {
	case protocol.ReleasedByVendor:
		return day + " (vendor)"
	case protocol.ReleasedFirstSeen:
		return day + " (first seen by the fleet; the source gives no date)"
	}
	return day + " (as reported)"
}

// exploitedText says whether an update is known exploited and who says
// so: CISA's catalog, with each listing, or the endpoint.
func exploitedText(k *plan.ExploitedEvidence) string {
	if k.Source != protocol.FeedKEV {
		return yesNo(k.Value) + " (reported by the endpoint)"
	}
	fetched := ""
	if k.FetchedAt != nil {
		fetched = " (feed fetched " + stamp(*k.FetchedAt) + ")"
	}
	if len(k.Listings) == 0 {
		text := "no: CISA's catalog lists none of its CVEs"
		if k.Reported {
			text += ", though the endpoint reported it known exploited"
		}
		return text + fetched
	}
	var listed []string
	for _, l := range k.Listings {
		listed = append(listed, fmt.Sprintf("%s listed by CISA on %s, due %s", l.CVE, l.DateAdded.UTC().Format(time.DateOnly), l.DueDate.UTC().Format(time.DateOnly)))
	}
	return strings.Join(listed, "; ") + fetched
}

// feedNames name the feeds for people.
var feedNames = map[string]string{
	protocol.FeedKEV:    "CISA KEV",
	protocol.FeedNVD:    "NVD",
	protocol.FeedEPSS:   "FIRST",
	protocol.FeedDebian: "Debian Security Tracker",
}

// feedText names the feed a value came from and when it was fetched.
func feedText(p plan.Provenance) string { return feedName(p.Source) + fetchedText(p) }

func feedName(feed string) string { return cmpOr(feedNames[feed], feed) }

// fetchedText says when a feed was fetched, "" when that is not known.
func fetchedText(p plan.Provenance) string {
	if p.FetchedAt == nil {
		return ""
	}
	return ", fetched " + stamp(*p.FetchedAt)
}

// joinSet joins the parts that are not empty with ", ".
func joinSet(parts ...string) string {
	var set []string
	for _, p := range parts {
		if p != "" {
			set = append(set, p)
		}
	}
	return strings.Join(set, ", ")
}

func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + txt(s) + ")"
}
