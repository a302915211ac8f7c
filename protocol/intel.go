package protocol

import (
	"slices"
	"time"
)

// Intel is what the controller knows of an update beyond what its endpoint
// reported: public vulnerability feeds applied to its CVEs. The reported
// fields of Update stay as the endpoint sent them; where a feed disagrees,
// both are kept and the policy uses the feed (the Effective methods).
type Intel struct {
	// CVEs are the CVEs a feed adds to those reported (the Debian Security
	// Tracker lists what an apt upgrade fixes).
	CVEs []string `json:"cves,omitempty"`
	// CVSS is the highest base score among the update's CVEs in NVD, from
	// the CVE CVSSCVE, in CVSS version CVSSVersion.
	CVSS        float64 `json:"cvss,omitempty"`
	CVSSVersion string  `json:"cvssVersion,omitempty"`
	CVSSCVE     string  `json:"cvssCve,omitempty"`
	// EPSS is the highest FIRST EPSS probability (0 to 1) among the
	// update's CVEs, from EPSSCVE.
	EPSS    float64 `json:"epss,omitempty"`
	EPSSCVE string  `json:"epssCve,omitempty"`
	// KEV lists the update's CVEs in CISA's Known Exploited
	// Vulnerabilities catalog.
	KEV []KEVListing `json:"kev,omitempty"`
	// Severity is the update's severity for the policy: the vendor's
	// rating when the endpoint reported one (SeverityFrom "vendor"),
	// otherwise derived from CVSS by the CVSS v3 bands ("cvss").
	Severity     string `json:"severity,omitempty"`
	SeverityFrom string `json:"severityFrom,omitempty"`
	// Urgency is the Debian Security Tracker's urgency, the highest among
	// the update's CVEs.
	Urgency string `json:"urgency,omitempty"`
	// Feeds are the feeds applied, with when each was fetched: a feed
	// listed here decides its field even when it says nothing (a CVE
	// absent from the KEV catalog is not known exploited).
	Feeds []FeedStamp `json:"feeds,omitempty"`
}

// KEVListing is one CVE in CISA's Known Exploited Vulnerabilities catalog.
type KEVListing struct {
	CVE       string    `json:"cve"`
	DateAdded time.Time `json:"dateAdded"`
	// DueDate is CISA's due date for federal agencies to remediate.
	DueDate time.Time `json:"dueDate"`
}

// FeedStamp names a feed applied to an update and when it was fetched.
type FeedStamp struct {
	Feed      string    `json:"feed"`
	FetchedAt time.Time `json:"fetchedAt"`
}

// Feed names, as FeedStamp.Feed and in metrics.
const (
	FeedKEV    = "kev"
	FeedEPSS   = "epss"
	FeedNVD    = "nvd"
	FeedDebian = "debian"
)

// applied reports whether feed was applied to u.
func (u *Update) applied(feed string) bool {
	if u.Intel == nil {
		return false
	}
	return slices.ContainsFunc(u.Intel.Feeds, func(f FeedStamp) bool { return f.Feed == feed })
}

// AllCVEs are the CVEs the update fixes: those reported and those a feed
// adds, sorted, without repeats.
func (u *Update) AllCVEs() []string {
	if u.Intel == nil || len(u.Intel.CVEs) == 0 {
		return u.CVEs
	}
	all := append(slices.Clone(u.CVEs), u.Intel.CVEs...)
	slices.Sort(all)
	return slices.Compact(all)
}

// EffectiveCVSS is the CVSS score the policy uses: NVD's when the feed
// scored one of the update's CVEs, else the reported one.
func (u *Update) EffectiveCVSS() float64 {
	if u.Intel != nil && u.Intel.CVSS > 0 {
		return u.Intel.CVSS
	}
	return u.CVSS
}

// EffectiveSeverity is the severity the policy uses: Intel's (the vendor's
// rating, or one derived from CVSS) when the controller set one, else the
// reported one.
func (u *Update) EffectiveSeverity() string {
	if u.Intel != nil && u.Intel.Severity != "" {
		return u.Intel.Severity
	}
	return u.Severity
}

// EffectiveKnownExploited is whether the policy treats the update as known
// exploited: by CISA's catalog when it was applied, else as reported.
func (u *Update) EffectiveKnownExploited() bool {
	if u.applied(FeedKEV) {
		return len(u.Intel.KEV) > 0
	}
	return u.KnownExploited
}

// EPSS is the update's EPSS probability (0 when no feed scored it).
func (u *Update) EPSS() float64 {
	if u.Intel == nil {
		return 0
	}
	return u.Intel.EPSS
}

// KEVDue is the earliest CISA due date among the update's listings, and
// false when none is listed.
func (u *Update) KEVDue() (time.Time, bool) {
	if u.Intel == nil || len(u.Intel.KEV) == 0 {
		return time.Time{}, false
	}
	due := u.Intel.KEV[0].DueDate
	for _, k := range u.Intel.KEV[1:] {
		if k.DueDate.Before(due) {
			due = k.DueDate
		}
	}
	return due, true
}

// SeverityForCVSS is the severity a CVSS base score maps to by the CVSS v3
// qualitative bands (low 0.1–3.9, medium 4.0–6.9, high 7.0–8.9, critical
// 9.0–10.0), in Patchline's severity names (low, moderate, important,
// critical); "" for no score.
func SeverityForCVSS(score float64) string {
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "important"
	case score >= 4:
		return "moderate"
	case score > 0:
		return "low"
	}
	return ""
}
