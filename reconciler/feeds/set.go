package feeds

import (
	"slices"
	"time"

	"github.com/patchline/patchline/reconciler/version"
)

// Feed names one of the four public feeds. Its value is the label the
// caller's metrics use (patchline_feed_errors_total{feed="kev"}).
type Feed string

// The feeds this package reads.
const (
	FeedKEV    Feed = "kev"    // CISA Known Exploited Vulnerabilities
	FeedEPSS   Feed = "epss"   // FIRST Exploit Prediction Scoring System
	FeedNVD    Feed = "nvd"    // NVD CVE JSON 2.0 data feeds
	FeedDebian Feed = "debian" // Debian Security Tracker
)

// All lists every feed, in the order reports show them.
var All = []Feed{FeedKEV, FeedEPSS, FeedNVD, FeedDebian}

// File says where the data of one feed file in a Set came from.
type File struct {
	Feed Feed
	// Name is the file's base name in the feed directory.
	Name string
	// Size and ModTime are the file's; ModTime is when Fetch wrote it,
	// that is when this copy was downloaded.
	Size    int64
	ModTime time.Time
	// Published is the publisher's own date for the data: KEV's
	// dateReleased, EPSS's score_date, NVD's timestamp. It is the zero
	// time, meaning unknown, for the Debian tracker, whose JSON carries
	// no date.
	Published time.Time
	// Version is the publisher's version of the data: KEV's
	// catalogVersion, EPSS's model_version, NVD's format version.
	Version string
	// Entries counts the CVEs the file gave (for Debian, the pairs of
	// source package and CVE).
	Entries int
}

// KEVEntry is what CISA's catalog says about one known exploited CVE.
type KEVEntry struct {
	CVE               string
	VendorProject     string
	Product           string
	VulnerabilityName string
	// DateAdded is when CISA added the CVE to the catalog, DueDate when
	// U.S. federal agencies must have acted; both are dates, at midnight
	// UTC.
	DateAdded time.Time
	DueDate   time.Time
	// Ransomware is true when knownRansomwareCampaignUse is "Known".
	Ransomware bool
}

// EPSS is FIRST's estimate that a CVE will be exploited in the next 30
// days (Score, 0 to 1) and where that score ranks among all scored CVEs
// (Percentile, 0 to 1). The date of the scores is the file's Published.
type EPSS struct {
	Score      float64
	Percentile float64
}

// CVSS is the base score NVD lists for a CVE: the CVSS v4.0 metric where
// there is one, else v3.1, else v3.0, else v2.0; within a version NVD's
// own (Primary) metric, else the highest of the others (Secondary, from
// the CNA).
type CVSS struct {
	Score float64
	// Version is "4.0", "3.1", "3.0" or "2.0"; Vector is the metric's
	// vector string, Source who scored it (nvd@nist.gov, or the CNA).
	Version string
	Vector  string
	Source  string
	// LastModified is the CVE record's lastModified in NVD, and File the
	// NVD feed file the record came from.
	LastModified time.Time
	File         string
}

// DebianFix is what the Debian Security Tracker says about one CVE in one
// source package in one release.
type DebianFix struct {
	// Release is the codename: "bookworm", "trixie", "sid", ...
	Release string
	// Status is "resolved", "open" or "undetermined".
	Status string
	// FixedVersion is the first version of the source package in that
	// release that is not affected; "0" means the release was never
	// affected, "" that there is no fix yet.
	FixedVersion string
	// Urgency is the tracker's: "not yet assigned", "unimportant", "low",
	// "medium", "high", "end-of-life", or "" when it gives none.
	Urgency string
}

// DebianCVE is one CVE an upgrade of a Debian source package fixes.
type DebianCVE struct {
	CVE string
	DebianFix
}

// Set holds the parsed feeds. A Set never changes once built, so it is
// safe for concurrent use; Reload returns a new one. Every method works on
// a nil *Set and on a Set that lacks a feed, and then finds nothing.
type Set struct {
	kev    *kevFeed
	epss   *epssFeed
	nvd    []*nvdFile // sorted by file name
	debian *debianFeed
}

// Files describes the files a feed's data came from; nil when the Set does
// not have the feed. Only NVD has more than one.
func (s *Set) Files(feed Feed) []File {
	if s == nil {
		return nil
	}
	switch feed {
	case FeedKEV:
		if s.kev != nil {
			return []File{s.kev.file}
		}
	case FeedEPSS:
		if s.epss != nil {
			return []File{s.epss.file}
		}
	case FeedNVD:
		var files []File
		for _, f := range s.nvd {
			files = append(files, f.file)
		}
		return files
	case FeedDebian:
		if s.debian != nil {
			return []File{s.debian.file}
		}
	}
	return nil
}

// KEV reports whether cve (spelled as CVE records spell it, "CVE-2024-3094")
// is in CISA's catalog, and what the catalog says about it.
func (s *Set) KEV(cve string) (KEVEntry, bool) {
	if s == nil || s.kev == nil {
		return KEVEntry{}, false
	}
	e, ok := s.kev.entries[cve]
	return e, ok
}

// EPSS returns FIRST's score for cve, if the scores list it.
func (s *Set) EPSS(cve string) (EPSS, bool) {
	if s == nil || s.epss == nil {
		return EPSS{}, false
	}
	e, ok := s.epss.scores[cve]
	return e, ok
}

// CVSS returns NVD's base score for cve. When several NVD files list the
// CVE, the record with the newest lastModified counts, so a "modified"
// file updates the yearly ones; if that record has no CVSS metric (a CVE
// awaiting analysis, or rejected since), CVSS finds nothing.
func (s *Set) CVSS(cve string) (CVSS, bool) {
	if s == nil {
		return CVSS{}, false
	}
	var (
		best  nvdRecord
		from  string
		found bool
	)
	for _, f := range s.nvd {
		r, ok := f.records[cve]
		// Files are in name order and only a strictly newer record
		// replaces, so equal timestamps resolve the same way every time.
		if ok && (!found || r.modified.After(best.modified)) {
			best, from, found = r, f.file.Name, true
		}
	}
	if !found || best.version == "" {
		return CVSS{}, false
	}
	return CVSS{
		Score:        best.score,
		Version:      best.version,
		Vector:       best.vector,
		Source:       best.source,
		LastModified: best.modified,
		File:         from,
	}, true
}

// DebianCVEs lists the CVEs that upgrading sourcePackage in release from
// installedVersion to candidateVersion fixes, by the Debian Security
// Tracker: those whose fixed version in that release is above the
// installed version and at most the candidate, in Debian version order.
// The result is sorted by CVE id.
func (s *Set) DebianCVEs(sourcePackage, release, installedVersion, candidateVersion string) []DebianCVE {
	if s == nil || s.debian == nil {
		return nil
	}
	var out []DebianCVE
	for _, r := range s.debian.byRelease[release][sourcePackage] {
		// "0" marks a release that was never affected: nothing to fix.
		if r.fixedVersion == "" || r.fixedVersion == "0" {
			continue
		}
		if version.Debian(r.fixedVersion, installedVersion) > 0 && version.Debian(r.fixedVersion, candidateVersion) <= 0 {
			out = append(out, DebianCVE{CVE: r.cve, DebianFix: r.fix(release)})
		}
	}
	return out
}

// DebianFixes lists, release by release in name order, what the Debian
// Security Tracker says about cve in sourcePackage.
func (s *Set) DebianFixes(sourcePackage, cve string) []DebianFix {
	if s == nil || s.debian == nil {
		return nil
	}
	var out []DebianFix
	for _, release := range s.debian.releases {
		recs := s.debian.byRelease[release][sourcePackage]
		i, ok := slices.BinarySearchFunc(recs, cve, func(r debianRecord, cve string) int {
			return compareCVE(r.cve, cve)
		})
		if ok {
			out = append(out, recs[i].fix(release))
		}
	}
	return out
}
