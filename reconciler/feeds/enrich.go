package feeds

import (
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
)

// debianReleases maps Debian's version numbers to the release code names
// the Security Tracker uses.
var debianReleases = map[string]string{
	"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie", "14": "forky",
}

// trackerRelease is the tracker's release name for an endpoint's OS version
// as the agent reports it ("debian 12", "12", "12.11" or "bookworm"), or ""
// when it is not a known Debian release.
func trackerRelease(os protocol.OS) string {
	v := strings.TrimSpace(strings.ToLower(os.Version))
	v = strings.TrimSpace(strings.TrimPrefix(v, "debian"))
	if name, ok := debianReleases[strings.SplitN(v, ".", 2)[0]]; ok {
		return name
	}
	for _, name := range debianReleases {
		if v == name {
			return name
		}
	}
	return ""
}

// Enrich sets the Intel of every update of snap from s: the CVEs the
// Debian tracker says an apt upgrade fixes, the KEV listings, EPSS and NVD
// CVSS scores of its CVEs (the highest of each), and the severity the
// policy uses (the vendor's when reported, else derived from CVSS). Each
// feed s holds is stamped on every update, with its fetch time, so a feed
// that says nothing (a CVE absent from the KEV catalog) decides too. With
// no feed and no severity to derive, Intel stays nil; with no feeds at all
// (s nil or empty), an update whose snapshot already carries Intel keeps
// it. Enrich is deterministic: the same snapshot and feeds give the same
// result.
func Enrich(snap *protocol.Snapshot, s *Set) {
	stamps := s.stamps()
	for _, ep := range snap.Endpoints {
		release := trackerRelease(ep.OS)
		for _, u := range ep.Updates {
			if u == nil || (len(stamps) == 0 && u.Intel != nil) {
				continue
			}
			u.Intel = s.intel(u, release, stamps)
		}
	}
}

// stamps are the feeds s holds with when each was fetched (the newest of
// its files' times).
func (s *Set) stamps() []protocol.FeedStamp {
	var out []protocol.FeedStamp
	for _, f := range All {
		files := s.Files(f)
		if len(files) == 0 {
			continue
		}
		var at time.Time
		for _, file := range files {
			if file.ModTime.After(at) {
				at = file.ModTime
			}
		}
		out = append(out, protocol.FeedStamp{Feed: string(f), FetchedAt: at.UTC()})
	}
	return out
}

// intel is what s says of u on an endpoint of Debian release release.
func (s *Set) intel(u *protocol.Update, release string, stamps []protocol.FeedStamp) *protocol.Intel {
	in := &protocol.Intel{Feeds: stamps}
	if u.Source == "apt" && u.SourcePackage != "" && release != "" && !u.Installed {
		for _, c := range s.DebianCVEs(u.SourcePackage, release, u.InstalledVersion, u.Version) {
			if !slices.Contains(u.CVEs, c.CVE) {
				in.CVEs = append(in.CVEs, c.CVE)
			}
			if urgencyRank(c.Urgency) > urgencyRank(in.Urgency) {
				in.Urgency = c.Urgency
			}
		}
		slices.Sort(in.CVEs)
		in.CVEs = slices.Compact(in.CVEs)
	}
	all := append(slices.Clone(u.CVEs), in.CVEs...)
	slices.Sort(all)
	for _, cve := range slices.Compact(all) {
		if k, ok := s.KEV(cve); ok {
			in.KEV = append(in.KEV, protocol.KEVListing{CVE: cve, DateAdded: k.DateAdded, DueDate: k.DueDate})
		}
		if e, ok := s.EPSS(cve); ok && e.Score > in.EPSS {
			in.EPSS, in.EPSSCVE = e.Score, cve
		}
		if c, ok := s.CVSS(cve); ok && c.Score > in.CVSS {
			in.CVSS, in.CVSSVersion, in.CVSSCVE = c.Score, c.Version, cve
		}
	}
	switch {
	case u.Severity != "":
		in.Severity, in.SeverityFrom = u.Severity, "vendor"
	case in.CVSS > 0:
		in.Severity, in.SeverityFrom = protocol.SeverityForCVSS(in.CVSS), "cvss"
	case u.CVSS > 0:
		in.Severity, in.SeverityFrom = protocol.SeverityForCVSS(u.CVSS), "cvss"
	}
	if len(stamps) == 0 && in.SeverityFrom != "cvss" {
		return nil
	}
	return in
}

// urgencyRank orders the tracker's urgencies; unknown ones ("not yet
// assigned", "unimportant", "end-of-life") rank lowest.
func urgencyRank(u string) int {
	switch u {
	case "low":
		return 1
	case "medium":
		return 2
	case "high":
		return 3
	}
	return 0
}
