package feeds

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseError is a feed file refused because it does not parse or does not
// validate: truncated, garbled, of the wrong format or version, with a
// score out of range or a malformed CVE id. It says where, as precisely as
// the format allows.
type ParseError struct {
	// File is the file as the caller named it (LoadDir: its path; Fetch:
	// its name in the feed directory).
	File string
	// Line is the 1-based line of a CSV file; 0 for JSON.
	Line int
	// Offset is the byte offset in a JSON file's content, decompressed if
	// the file is gzipped; -1 when unknown.
	Offset int64
	// Path is the JSON path of the offending value, for example
	// "vulnerabilities[12].cve.metrics.cvssMetricV31[0].cvssData.baseScore";
	// "" when the error is not in one value.
	Path string
	Err  error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, ": line %d", e.Line)
	case e.Offset >= 0:
		fmt.Fprintf(&b, ": byte %d", e.Offset)
	}
	if e.Path != "" {
		b.WriteString(": ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// splitCVE splits "CVE-YYYY-NNNN" into its digit runs.
func splitCVE(id string) (year, num string, ok bool) {
	rest, ok := strings.CutPrefix(id, "CVE-")
	if !ok {
		return "", "", false
	}
	year, num, ok = strings.Cut(rest, "-")
	return year, num, ok && allDigits(year) && allDigits(num)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// compareCVE orders CVE ids by year, then number (CVE-2024-9999 before
// CVE-2024-10000); ids that are not CVE ids sort by their text, after.
func compareCVE(a, b string) int {
	ay, an, aok := splitCVE(a)
	by, bn, bok := splitCVE(b)
	if !aok || !bok {
		switch {
		case aok:
			return -1
		case bok:
			return 1
		}
		return strings.Compare(a, b)
	}
	if c := compareNumbers(ay, by); c != 0 {
		return c
	}
	return compareNumbers(an, bn)
}

// compareNumbers compares two runs of digits as numbers of any size.
func compareNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// parseDate reads a "YYYY-MM-DD" date as midnight UTC.
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not a date (YYYY-MM-DD)", strconv.Quote(s))
	}
	return t, nil
}

// parseTimestamp reads the date-times the publishers write: RFC 3339 with
// a zone (KEV's dateReleased, EPSS's score_date), a numeric zone without a
// colon (older EPSS files), or no zone at all, which NVD means as UTC. Any
// number of fractional digits is accepted.
func parseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s is not a date-time", strconv.Quote(s))
}
