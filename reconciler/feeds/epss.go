package feeds

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/patchline/patchline/protocol"
)

// EPSSFile is the name FIRST publishes the current scores under, and the
// name they have in a feed directory; EPSSFile without ".gz" is accepted
// too.
const EPSSFile = "epss_scores-current.csv.gz"

// epssHeader is the CSV header of the scores.
const epssHeader = "cve,epss,percentile"

// maxEPSSLine bounds one line of the CSV; real lines are under 40 bytes.
const maxEPSSLine = 4 << 10

// epssFeed is a parsed EPSS file.
type epssFeed struct {
	file   File
	scores map[string]EPSS
}

// parseEPSS reads FIRST's daily CSV: a comment line
// "#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z", the header
// "cve,epss,percentile", then one row per CVE. The score date is required:
// scores without a date cannot say how fresh they are.
func parseEPSS(ctx context.Context, name string, r io.Reader) (*epssFeed, error) {
	feed := &epssFeed{file: File{Feed: FeedEPSS}, scores: make(map[string]EPSS)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxEPSSLine)
	line := 0
	fail := func(format string, args ...any) error {
		return &ParseError{File: name, Line: line, Offset: -1, Err: fmt.Errorf(format, args...)}
	}
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimSuffix(sc.Text(), "\r"), true
	}
	scanErr := func() error {
		line++
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return fail("a line longer than %d bytes: not EPSS scores", maxEPSSLine)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fail("unexpected end of file (truncated?)")
			}
			return fail("%w", err)
		}
		return nil
	}

	text, ok := next()
	if !ok {
		if err := scanErr(); err != nil {
			return nil, err
		}
		return nil, fail("empty file")
	}
	if err := feed.parseComment(text); err != nil {
		return nil, fail("%w", err)
	}
	if text, ok = next(); !ok {
		if err := scanErr(); err != nil {
			return nil, err
		}
		return nil, fail("no header after the comment line")
	}
	if text != epssHeader {
		return nil, fail("expected the header %q, found %q", epssHeader, text)
	}
	for {
		text, ok := next()
		if !ok {
			break
		}
		if err := checkCtx(ctx, line); err != nil {
			return nil, err
		}
		if text == "" {
			continue
		}
		cve, e, err := parseEPSSRow(text)
		if err != nil {
			return nil, fail("%w", err)
		}
		if _, dup := feed.scores[cve]; dup {
			return nil, fail("%s is scored twice", cve)
		}
		feed.scores[cve] = e
	}
	if err := scanErr(); err != nil {
		return nil, err
	}
	if len(feed.scores) == 0 {
		return nil, fail("no scores after the header")
	}
	feed.file.Entries = len(feed.scores)
	return feed, nil
}

// parseComment reads the first line's "#key:value,key:value".
func (f *epssFeed) parseComment(text string) error {
	body, ok := strings.CutPrefix(text, "#")
	if !ok {
		return fmt.Errorf("expected the comment line #model_version:...,score_date:..., found %q", text)
	}
	for _, kv := range strings.Split(body, ",") {
		k, v, _ := strings.Cut(kv, ":")
		switch strings.TrimSpace(k) {
		case "model_version":
			f.file.Version = strings.TrimSpace(v)
		case "score_date":
			v = strings.TrimSpace(v)
			t, err := parseTimestamp(v)
			if err != nil {
				if t, err = parseDate(v); err != nil {
					return fmt.Errorf("score_date %q is neither a date nor a date-time", v)
				}
			}
			f.file.Published = t
		}
	}
	if f.file.Published.IsZero() {
		return fmt.Errorf("the comment line %q has no score_date", text)
	}
	return nil
}

// parseEPSSRow reads "CVE-2024-3094,0.86123,0.99352".
func parseEPSSRow(text string) (string, EPSS, error) {
	fields := strings.Split(text, ",")
	if len(fields) != 3 {
		return "", EPSS{}, fmt.Errorf("%d fields, expected 3 (%s)", len(fields), epssHeader)
	}
	cve := fields[0]
	if !protocol.ValidCVE(cve) {
		return "", EPSS{}, fmt.Errorf("%q is not a CVE id", cve)
	}
	var e EPSS
	for i, p := range []*float64{&e.Score, &e.Percentile} {
		col := [...]string{"epss", "percentile"}[i]
		v, err := strconv.ParseFloat(fields[i+1], 64)
		// The negated test also refuses NaN, which ParseFloat accepts.
		if err != nil || !(v >= 0 && v <= 1) {
			return "", EPSS{}, fmt.Errorf("%s: %s %q is not a number from 0 to 1", cve, col, fields[i+1])
		}
		*p = v
	}
	return cve, e, nil
}
