// Package changelog reads Debian changelogs (debian/changelog, installed
// as /usr/share/doc/<package>/changelog.Debian.gz): their entries, newest
// first, each with its source package, version, upload urgency, the CVE
// ids its text names and the date of its trailer line.
//
// An entry is a header line, change lines and a trailer line:
//
//	openssh (1:9.2p1-2+deb12u5) bookworm-security; urgency=medium
//
//	  * CVE-2025-26465: Fix MitM in verify_host_key_callback.
//	  * Fix incorrect return values on a number of error paths.
//
//	 -- Colin Watson <cjwatson@debian.org>  Fri, 14 Feb 2025 13:06:51 +0000
//
// The syntax is dpkg's (Dpkg::Changelog::Debian): comment lines ("# ...",
// as the note debhelper leaves where it trims old entries) are skipped,
// and an Emacs or vim variables block ends the changelog. A line dpkg
// would call badly formatted stops Parse with an error naming the line;
// the entries before it stay usable.
//
// A changelog comes from a package the endpoint downloaded, so Parse is
// bounded: lines, entries, CVE ids and the text read in all have
// limits, past which it stops with an error rather than grow.
package changelog

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
)

// Limits of what Parse reads.
const (
	// maxBytes bounds the text read in all. Debian's biggest changelogs
	// (the kernel's) are a few MiB.
	maxBytes = 16 << 20
	// maxLineBytes bounds one line.
	maxLineBytes = 64 << 10
	// maxEntryBytes bounds the text of one entry.
	maxEntryBytes = 1 << 20
	// maxEntries bounds the entries read.
	maxEntries = 5000
	// maxCVEs bounds the CVE ids of all the entries read together.
	maxCVEs = 20000
)

// Entry is one entry of a Debian changelog.
type Entry struct {
	// Source is the source package the entry is an upload of.
	Source string
	// Version is the version uploaded, epoch included ("1:9.2p1-2").
	Version string
	// Urgency is the upload urgency, lower-cased and without its comment,
	// when it is one of protocol.Urgencies; "" when the header has none or
	// an unknown one.
	Urgency string
	// CVEs are the CVE ids named in the entry's text, unique, by year
	// then number.
	CVEs []string
	// Date is the time of the trailer line, in UTC.
	Date time.Time
}

// header is a changelog entry's first line: source, version,
// distributions, then the comma-separated key=value options. It is dpkg's
// $regex_header.
var header = regexp.MustCompile(`(?i)^(\w[-+0-9a-z.]*) \(([^() \t]+)\)((?:\s+[-+0-9a-z.]+)+);(.*?)\s*$`)

// trailer is an entry's last line: " -- Name <email>  date". dpkg wants
// two spaces before the date and tolerates one.
var trailer = regexp.MustCompile(`^ -- (.*) <([^<>]*)> {1,2}(\S.*?)\s*$`)

// Parse reads the changelog text r holds (decompressed), newest entry
// first. It returns the entries read before any error, and the error (nil
// at a clean end), which names the line at fault: the entries before a
// badly formatted line stay usable.
func Parse(r io.Reader) ([]*Entry, error) {
	// The reader stops a little past maxBytes, so that a huge or endless
	// input (a decompression bomb) is neither read nor decompressed to its
	// end; readLine reports the overrun.
	sc := bufio.NewScanner(io.LimitReader(r, maxBytes+maxLineBytes+2))
	sc.Buffer(make([]byte, 0, 4096), maxLineBytes)
	p := &parser{sc: sc}
	var entries []*Entry
	for {
		e, err := p.entry()
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return entries, err
		}
		entries = append(entries, e)
	}
}

// parser reads entries one at a time.
type parser struct {
	sc      *bufio.Scanner
	line    int   // number of the last line read
	read    int   // bytes of the lines read so far
	entries int   // entries started
	cves    int   // CVE ids found so far
	err     error // why readLine stopped, when not at the end
}

// readLine returns the next line; ok is false at the end of the text or on
// an error, which it records.
func (r *parser) readLine() (string, bool) {
	if !r.sc.Scan() {
		if err := r.sc.Err(); errors.Is(err, bufio.ErrTooLong) {
			r.err = fmt.Errorf("line %d: longer than %d bytes", r.line+1, maxLineBytes)
		} else if err != nil {
			r.err = fmt.Errorf("line %d: %w", r.line+1, err)
		}
		return "", false
	}
	r.line++
	b := r.sc.Bytes()
	r.read += len(b) + 1
	if r.read > maxBytes {
		r.err = fmt.Errorf("line %d: changelog longer than %d bytes", r.line, maxBytes)
		return "", false
	}
	return string(b), true
}

// ignored reports the lines dpkg skips between and inside entries:
// comments and what looks like an RCS keyword.
func ignored(line string) bool {
	return strings.HasPrefix(line, "# ") || line == "#" ||
		(strings.HasPrefix(line, "/*") && strings.HasSuffix(line, "*/")) ||
		(strings.HasPrefix(line, "$") && strings.Count(line, "$") >= 2 && strings.Contains(line, ":"))
}

// endOfChangelog reports the editor variable blocks that end a
// changelog.
func endOfChangelog(line string) bool {
	l := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, ";;")))
	return strings.HasPrefix(l, "local variables:") || strings.HasPrefix(line, "vim:")
}

// entry reads one entry. It returns io.EOF when the changelog holds no
// further entry.
func (r *parser) entry() (*Entry, error) {
	var head string
	var headLine int
	for head == "" {
		line, ok := r.readLine()
		if !ok {
			return nil, r.endErr()
		}
		switch {
		case strings.TrimSpace(line) == "" || ignored(line):
		case endOfChangelog(line):
			return nil, io.EOF
		case line[0] == ' ' || line[0] == '\t':
			return nil, fmt.Errorf("line %d: change text outside an entry", r.line)
		default:
			head, headLine = line, r.line
		}
	}
	e, err := parseHeader(head, headLine)
	if err != nil {
		return nil, err
	}
	if r.entries++; r.entries > maxEntries {
		return nil, fmt.Errorf("line %d: more than %d entries", headLine, maxEntries)
	}
	cves := map[string]bool{}
	size := len(head)
	for {
		line, ok := r.readLine()
		if !ok {
			if err := r.endErr(); err != io.EOF {
				return nil, err
			}
			return nil, fmt.Errorf("line %d: entry %s (%s) has no trailer line", headLine, e.Source, e.Version)
		}
		if size += len(line) + 1; size > maxEntryBytes {
			return nil, fmt.Errorf("line %d: entry %s (%s) longer than %d bytes", headLine, e.Source, e.Version, maxEntryBytes)
		}
		switch {
		case strings.HasPrefix(line, " --"):
			date, err := parseTrailer(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", r.line, err)
			}
			e.Date = date
			e.CVEs = sortedKeys(cves)
			return e, nil
		case strings.TrimSpace(line) == "" || ignored(line):
		case line[0] == ' ' || line[0] == '\t':
			for _, id := range findCVEs(line) {
				if !cves[id] {
					if r.cves++; r.cves > maxCVEs {
						return nil, fmt.Errorf("line %d: more than %d CVE ids", r.line, maxCVEs)
					}
					cves[id] = true
				}
			}
		case header.MatchString(line):
			return nil, fmt.Errorf("line %d: entry %s (%s) has no trailer line before the next entry", headLine, e.Source, e.Version)
		default:
			return nil, fmt.Errorf("line %d: badly formatted line in entry %s (%s)", r.line, e.Source, e.Version)
		}
	}
}

// endErr is the error for the end of the input: why readLine stopped,
// or io.EOF.
func (r *parser) endErr() error {
	if r.err != nil {
		return r.err
	}
	return io.EOF
}

// parseHeader reads an entry's header line.
func parseHeader(line string, n int) (*Entry, error) {
	m := header.FindStringSubmatch(line)
	if m == nil {
		return nil, fmt.Errorf("line %d: not a changelog entry header: %q", n, truncate(line, 80))
	}
	e := &Entry{Source: m[1], Version: m[2]}
	for _, opt := range strings.Split(m[4], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "urgency") {
			continue
		}
		// "urgency=low (HIGH for m68k)": the first word is the urgency,
		// the rest a comment.
		if f := strings.Fields(v); len(f) > 0 {
			if u := strings.ToLower(f[0]); slices.Contains(protocol.Urgencies, u) {
				e.Urgency = u
			}
		}
	}
	return e, nil
}

// parseTrailer reads the date of an entry's trailer line.
func parseTrailer(line string) (time.Time, error) {
	m := trailer.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, fmt.Errorf("malformed trailer line %q (want \" -- Name <email>  date\")", truncate(line, 120))
	}
	t, err := mail.ParseDate(m[3])
	if err != nil {
		t, err = parseLongMonth(m[3])
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("trailer date %q is not an RFC 2822 date", truncate(m[3], 80))
	}
	return t.UTC(), nil
}

// parseLongMonth reads a trailer date that names the month in full ("Mon,
// 23 February 2004 13:10:00 +0900"), which dpkg's strptime takes too.
func parseLongMonth(date string) (time.Time, error) {
	f := strings.Fields(date)
	if len(f) == 6 && strings.HasSuffix(f[0], ",") {
		f = f[1:]
	}
	return time.Parse("2 January 2006 15:04:05 -0700", strings.Join(f, " "))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// maxCVEDigits bounds the sequence number of a CVE id findCVEs accepts, so
// that ids sort by number.
const maxCVEDigits = 18

// findCVEs returns the CVE ids in s, in order of appearance. An id is
// "CVE-", a four-digit year, "-" and a sequence number of at least four
// digits, standing as a word of its own: "CVE-2024-0727" in
// "(CVE-2024-0727)" counts, "XCVE-2024-0727", "CVE-2024-07278a" and
// "cve-2024-0727" do not.
func findCVEs(s string) []string {
	var ids []string
	for i := 0; ; {
		j := strings.Index(s[i:], "CVE-")
		if j < 0 {
			return ids
		}
		start := i + j
		i = start + len("CVE-")
		if start > 0 && wordByte(s[start-1]) {
			continue
		}
		year := digits(s[i:])
		if year != 4 || i+year >= len(s) || s[i+year] != '-' {
			continue
		}
		seq := digits(s[i+year+1:])
		end := i + year + 1 + seq
		if seq < 4 || seq > maxCVEDigits || (end < len(s) && wordByte(s[end])) {
			continue
		}
		ids = append(ids, s[start:end])
		i = end
	}
}

// wordByte reports bytes that join a CVE id to a longer word.
func wordByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// digits counts the ASCII digits at the start of s.
func digits(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}

// compareCVEs orders CVE ids by year, then by sequence number
// ("CVE-2024-9999" before "CVE-2024-10000"). It takes ids findCVEs
// returned.
func compareCVEs(a, b string) int {
	ya, na := cveParts(a)
	yb, nb := cveParts(b)
	return cmp.Or(cmp.Compare(ya, yb), cmp.Compare(na, nb), strings.Compare(a, b))
}

func cveParts(id string) (year, seq uint64) {
	rest := strings.TrimPrefix(id, "CVE-")
	y, n, _ := strings.Cut(rest, "-")
	year, _ = strconv.ParseUint(y, 10, 64)
	seq, _ = strconv.ParseUint(n, 10, 64)
	return year, seq
}

func sortedKeys(set map[string]bool) []string {
	if len(set) == 0 {
		return nil
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareCVEs)
	return ids
}

// CVEs returns the CVE ids of entries together: unique, in compareCVEs
// order.
func CVEs(entries []*Entry) []string {
	set := map[string]bool{}
	for _, e := range entries {
		for _, id := range e.CVEs {
			set[id] = true
		}
	}
	return sortedKeys(set)
}

// Urgency returns the highest urgency of entries in Debian's order (low,
// medium, high, emergency, critical: protocol.Urgencies), or "" when none
// has one.
func Urgency(entries []*Entry) string {
	best := -1
	for _, e := range entries {
		if i := slices.Index(protocol.Urgencies, e.Urgency); i > best {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return protocol.Urgencies[best]
}
