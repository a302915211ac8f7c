package plan

import (
	"slices"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// evidence gathers the facts about u that rules weigh, one for each kind
// of data field they set, with where each came from; nil when they set
// none. It reads u as approves does, through the effective values.
func evidence(rules []schema.ApproveRule, u *protocol.Update) *Evidence {
	var x Evidence
	for i := range rules {
		a := &rules[i]
		if a.KnownExploited != nil && x.KnownExploited == nil {
			x.KnownExploited = exploitedEvidence(u)
		}
		if len(a.CVE) > 0 && x.CVEs == nil {
			x.CVEs = cveEvidence(u)
		}
		if a.MinCVSS > 0 && x.CVSS == nil {
			x.CVSS = cvssEvidence(u)
		}
		if a.MinEPSS > 0 && x.EPSS == nil {
			x.EPSS = epssEvidence(u)
		}
		if a.MinSeverity != "" && x.Severity == nil {
			x.Severity = severityEvidence(u)
		}
		if (a.MinAge > 0 || !a.ReleasedBefore.IsZero()) && x.Released == nil {
			x.Released = &ReleaseEvidence{From: u.ReleasedFrom}
			if !u.Released.IsZero() {
				x.Released.At = timePtr(u.Released)
			}
		}
	}
	if x == (Evidence{}) {
		return nil
	}
	return &x
}

// fromFeed is the provenance of a value feed gave u, with its fetch time
// when u's Intel records the feed.
func fromFeed(u *protocol.Update, feed string) Provenance {
	p := Provenance{Source: feed}
	if u.Intel != nil {
		if i := slices.IndexFunc(u.Intel.Feeds, func(f protocol.FeedStamp) bool { return f.Feed == feed }); i >= 0 {
			p.FetchedAt = timePtr(u.Intel.Feeds[i].FetchedAt)
		}
	}
	return p
}

// applied reports whether feed was applied to u.
func applied(u *protocol.Update, feed string) bool { return fromFeed(u, feed).FetchedAt != nil }

func exploitedEvidence(u *protocol.Update) *ExploitedEvidence {
	e := &ExploitedEvidence{Value: u.EffectiveKnownExploited(), Reported: u.KnownExploited, Provenance: Provenance{Source: SourceEndpoint}}
	if applied(u, protocol.FeedKEV) {
		e.Provenance, e.Listings = fromFeed(u, protocol.FeedKEV), u.Intel.KEV
	}
	return e
}

func cveEvidence(u *protocol.Update) *CVEEvidence {
	e := &CVEEvidence{Reported: u.CVEs}
	if u.Intel == nil {
		return e
	}
	for _, c := range u.Intel.CVEs {
		if !slices.Contains(u.CVEs, c) && !slices.Contains(e.Added, c) {
			e.Added = append(e.Added, c)
		}
	}
	if len(e.Added) > 0 {
		// The Debian Security Tracker is the feed that adds CVEs.
		by := fromFeed(u, protocol.FeedDebian)
		e.AddedBy = &by
		slices.Sort(e.Added)
	}
	return e
}

// cvssEvidence follows EffectiveCVSS: NVD's score when the feed gave one.
func cvssEvidence(u *protocol.Update) *ScoreEvidence {
	if u.Intel != nil && u.Intel.CVSS > 0 {
		return &ScoreEvidence{Value: u.Intel.CVSS, CVE: u.Intel.CVSSCVE, Version: u.Intel.CVSSVersion, Provenance: fromFeed(u, protocol.FeedNVD)}
	}
	e := &ScoreEvidence{Value: u.CVSS}
	if u.CVSS > 0 {
		e.Source = SourceEndpoint
	}
	return e
}

func epssEvidence(u *protocol.Update) *ScoreEvidence {
	e := &ScoreEvidence{Value: u.EPSS()}
	if e.Value > 0 || applied(u, protocol.FeedEPSS) {
		e.Provenance, e.CVE = fromFeed(u, protocol.FeedEPSS), u.Intel.EPSSCVE
	}
	return e
}

// severityEvidence follows EffectiveSeverity: Intel's severity, derived
// from CVSS or the vendor's, else the one reported, which is the vendor's.
func severityEvidence(u *protocol.Update) *SeverityEvidence {
	e := &SeverityEvidence{Severity: u.EffectiveSeverity()}
	switch {
	case e.Severity == "":
	case u.Intel != nil && u.Intel.Severity != "" && u.Intel.SeverityFrom == SeverityFromCVSS:
		e.From, e.CVSS = SeverityFromCVSS, u.EffectiveCVSS()
	default:
		e.From = SeverityFromVendor
	}
	return e
}
