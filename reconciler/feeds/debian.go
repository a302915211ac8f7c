package feeds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/patchline/patchline/protocol"
)

// DebianFile is the name the Debian Security Tracker's JSON has in a feed
// directory (the tracker serves it as /tracker/data/json).
const DebianFile = "debian-security-tracker.json"

// debianFeed is a parsed tracker JSON, indexed the way lookups use it:
// release, then source package, then the package's records sorted by CVE.
type debianFeed struct {
	file      File
	releases  []string // the release names, sorted
	byRelease map[string]map[string][]debianRecord
}

// debianRecord is one (source package, CVE, release) of the tracker.
type debianRecord struct {
	cve, status, fixedVersion, urgency string
}

func (r debianRecord) fix(release string) DebianFix {
	return DebianFix{Release: release, Status: r.status, FixedVersion: r.fixedVersion, Urgency: r.urgency}
}

// debianIssue is the tracker's entry for one CVE in one source package,
// reduced to its releases; description, scope and debianbug are skipped.
type debianIssue struct {
	Releases map[string]debianRelease `json:"releases"`
}

// debianRelease is one release of an issue; the per-suite versions in
// "repositories" and the nodsa notes are skipped.
type debianRelease struct {
	Status       string `json:"status"`
	FixedVersion string `json:"fixed_version"`
	Urgency      string `json:"urgency"`
}

// parseDebian reads the tracker's JSON as a stream, one (package, CVE)
// entry at a time: an object keyed by source package, each an object
// keyed by CVE id. TEMP- ids (issues without a CVE yet) are left out; any
// other id that is not a CVE id, and a status other than "resolved",
// "open" or "undetermined", refuse the file.
func parseDebian(ctx context.Context, name string, r io.Reader) (*debianFeed, error) {
	s := newJSONStream(name, r)
	feed := &debianFeed{file: File{Feed: FeedDebian}, byRelease: make(map[string]map[string][]debianRecord)}
	// Status, urgency, release and version strings repeat across the
	// file's hundreds of thousands of entries; one copy of each.
	in := interner{}
	packages := make(map[string]bool)
	n := 0
	if err := s.delim("", '{'); err != nil {
		return nil, err
	}
	for s.more() {
		pkg, err := s.key("")
		if err != nil {
			return nil, err
		}
		path := "[" + strconv.Quote(pkg) + "]"
		if pkg == "" {
			return nil, s.fail(path, errors.New("empty source package name"))
		}
		if packages[pkg] {
			return nil, s.fail(path, errors.New("appears twice"))
		}
		packages[pkg] = true
		pkg = in.get(pkg)
		if err := s.delim(path, '{'); err != nil {
			return nil, err
		}
		ids := make(map[string]bool)
		for s.more() {
			if err := checkCtx(ctx, n); err != nil {
				return nil, err
			}
			n++
			id, err := s.key(path)
			if err != nil {
				return nil, err
			}
			ipath := path + "[" + strconv.Quote(id) + "]"
			if strings.HasPrefix(id, "TEMP-") {
				if err := s.skip(ipath); err != nil {
					return nil, err
				}
				continue
			}
			if !protocol.ValidCVE(id) {
				return nil, s.fail(ipath, fmt.Errorf("%q is neither a CVE id nor a TEMP- id", id))
			}
			if ids[id] {
				return nil, s.fail(ipath, errors.New("appears twice"))
			}
			ids[id] = true
			off := s.dec.InputOffset()
			var issue debianIssue
			if err := s.decode(ipath, &issue); err != nil {
				return nil, err
			}
			if err := feed.add(in, pkg, id, issue); err != nil {
				return nil, s.failAt(off, ipath+".releases", "%w", err)
			}
			feed.file.Entries++
		}
		if err := s.delim(path, '}'); err != nil {
			return nil, err
		}
	}
	if err := s.delim("", '}'); err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if feed.file.Entries == 0 {
		return nil, s.fail("", errors.New("no CVE in the tracker's data"))
	}
	for release, pkgs := range feed.byRelease {
		feed.releases = append(feed.releases, release)
		for _, recs := range pkgs {
			slices.SortFunc(recs, func(a, b debianRecord) int { return compareCVE(a.cve, b.cve) })
		}
	}
	slices.Sort(feed.releases)
	return feed, nil
}

func (f *debianFeed) add(in interner, pkg, cve string, issue debianIssue) error {
	// In name order, so that of two faults the same one is reported
	// every time.
	for _, release := range slices.Sorted(maps.Keys(issue.Releases)) {
		r := issue.Releases[release]
		switch {
		case release == "":
			return errors.New("a release with no name")
		case r.Status != "resolved" && r.Status != "open" && r.Status != "undetermined":
			return fmt.Errorf("%s.status: %q is not resolved, open or undetermined", release, r.Status)
		}
		release = in.get(release)
		pkgs := f.byRelease[release]
		if pkgs == nil {
			pkgs = make(map[string][]debianRecord)
			f.byRelease[release] = pkgs
		}
		pkgs[pkg] = append(pkgs[pkg], debianRecord{
			cve:          cve,
			status:       in.get(r.Status),
			fixedVersion: in.get(r.FixedVersion),
			urgency:      in.get(r.Urgency),
		})
	}
	return nil
}
