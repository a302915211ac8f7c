package feeds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/patchline/patchline/protocol"
)

// nvdName matches the names of NVD's CVE JSON 2.0 feed files:
// nvdcve-2.0-2025.json.gz, nvdcve-2.0-modified.json, ...
var nvdName = regexp.MustCompile(`^nvdcve-2\.0-[A-Za-z0-9_-]+\.json(\.gz)?$`)

// nvdFile is one parsed NVD feed file.
type nvdFile struct {
	file    File
	records map[string]nvdRecord
}

// nvdRecord is what a Set keeps of one CVE record: the chosen metric and
// the record's lastModified, which decides between files. version is ""
// when the record has no CVSS metric.
type nvdRecord struct {
	score                   float64
	version, vector, source string
	modified                time.Time
}

// nvdVulnerability is one element of the feed's vulnerabilities array,
// reduced to the fields this package uses; the decoder skips the rest
// (descriptions, configurations, references) without keeping them.
type nvdVulnerability struct {
	CVE struct {
		ID           string `json:"id"`
		LastModified string `json:"lastModified"`
		Metrics      struct {
			V40 []nvdMetric `json:"cvssMetricV40"`
			V31 []nvdMetric `json:"cvssMetricV31"`
			V30 []nvdMetric `json:"cvssMetricV30"`
			V2  []nvdMetric `json:"cvssMetricV2"`
		} `json:"metrics"`
	} `json:"cve"`
}

type nvdMetric struct {
	Source   string `json:"source"`
	Type     string `json:"type"`
	CVSSData struct {
		Version      string   `json:"version"`
		VectorString string   `json:"vectorString"`
		BaseScore    *float64 `json:"baseScore"`
	} `json:"cvssData"`
}

// parseNVD reads one NVD CVE JSON 2.0 feed file (the CVE API 2.0 response
// format) as a stream: the top-level fields, then the vulnerabilities one
// at a time. It refuses a file whose format is not "NVD_CVE" or whose
// version is not "2.0", a malformed CVE id or date, and a CVSS metric that
// does not match its array's version or scores outside 0 to 10.
func parseNVD(ctx context.Context, name string, r io.Reader) (*nvdFile, error) {
	s := newJSONStream(name, r)
	f := &nvdFile{file: File{Feed: FeedNVD}, records: make(map[string]nvdRecord)}
	seen := once{}
	var format string
	if err := s.delim("", '{'); err != nil {
		return nil, err
	}
	for s.more() {
		key, err := s.key("")
		if err != nil {
			return nil, err
		}
		if err := seen.see(s, key); err != nil {
			return nil, err
		}
		off := s.dec.InputOffset()
		switch key {
		case "format":
			if err = s.decode(key, &format); err == nil && format != "NVD_CVE" {
				err = s.failAt(off, key, "%q, expected \"NVD_CVE\": not an NVD CVE feed", format)
			}
		case "version":
			if err = s.decode(key, &f.file.Version); err == nil && f.file.Version != "2.0" {
				err = s.failAt(off, key, "%q, expected \"2.0\": this package reads the CVE JSON 2.0 feeds", f.file.Version)
			}
		case "timestamp":
			var v string
			if err = s.decode(key, &v); err == nil {
				if f.file.Published, err = parseTimestamp(v); err != nil {
					err = s.failAt(off, key, "%w", err)
				}
			}
		case "vulnerabilities":
			err = f.parseVulnerabilities(ctx, s)
		default:
			err = s.skip(key)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := s.delim("", '}'); err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if k, ok := seen.missing("format", "version", "timestamp", "vulnerabilities"); ok {
		return nil, s.fail("", fmt.Errorf("no %q: not an NVD CVE feed", k))
	}
	f.file.Entries = len(f.records)
	return f, nil
}

func (f *nvdFile) parseVulnerabilities(ctx context.Context, s *jsonStream) error {
	if err := s.delim("vulnerabilities", '['); err != nil {
		return err
	}
	// Versions, vectors and sources repeat across records; keeping one
	// copy of each keeps the result small.
	in := interner{}
	for i := 0; s.more(); i++ {
		if err := checkCtx(ctx, i); err != nil {
			return err
		}
		path := fmt.Sprintf("vulnerabilities[%d]", i)
		off := s.dec.InputOffset()
		var v nvdVulnerability
		if err := s.decode(path, &v); err != nil {
			return err
		}
		id, rec, field, err := v.record()
		if err != nil {
			return s.failAt(off, joinPath(path, field), "%w", err)
		}
		rec.version, rec.vector, rec.source = in.get(rec.version), in.get(rec.vector), in.get(rec.source)
		// The same merge rule as between files: the newer record counts.
		if old, dup := f.records[id]; !dup || rec.modified.After(old.modified) {
			f.records[id] = rec
		}
	}
	return s.delim("vulnerabilities", ']')
}

// record validates one vulnerability and chooses its metric, returning
// the field at fault on error.
func (v *nvdVulnerability) record() (string, nvdRecord, string, error) {
	c := &v.CVE
	if !protocol.ValidCVE(c.ID) {
		return "", nvdRecord{}, "cve.id", fmt.Errorf("%q is not a CVE id", c.ID)
	}
	if c.LastModified == "" {
		return "", nvdRecord{}, "cve.lastModified", errors.New("missing")
	}
	modified, err := parseTimestamp(c.LastModified)
	if err != nil {
		return "", nvdRecord{}, "cve.lastModified", err
	}
	rec := nvdRecord{modified: modified}
	// In the order of preference: the first version with a metric wins.
	for _, m := range []struct {
		field, version string
		list           []nvdMetric
	}{
		{"cvssMetricV40", "4.0", c.Metrics.V40},
		{"cvssMetricV31", "3.1", c.Metrics.V31},
		{"cvssMetricV30", "3.0", c.Metrics.V30},
		{"cvssMetricV2", "2.0", c.Metrics.V2},
	} {
		best := -1
		for j, mt := range m.list {
			if err := mt.check(m.version); err != nil {
				return "", nvdRecord{}, fmt.Sprintf("cve.metrics.%s[%d]", m.field, j), err
			}
			if best < 0 || mt.better(m.list[best]) {
				best = j
			}
		}
		if rec.version == "" && best >= 0 {
			b := m.list[best]
			rec.score, rec.version, rec.vector, rec.source = *b.CVSSData.BaseScore, m.version, b.CVSSData.VectorString, b.Source
		}
	}
	return c.ID, rec, "", nil
}

// check validates one metric of an array that holds version's metrics.
func (m *nvdMetric) check(version string) error {
	switch {
	case m.Type != "Primary" && m.Type != "Secondary":
		return fmt.Errorf("type %q is neither \"Primary\" nor \"Secondary\"", m.Type)
	case m.CVSSData.Version != version:
		return fmt.Errorf("cvssData.version %q in the array of CVSS %s metrics", m.CVSSData.Version, version)
	case m.CVSSData.BaseScore == nil:
		return errors.New("cvssData.baseScore missing")
	case !(*m.CVSSData.BaseScore >= 0 && *m.CVSSData.BaseScore <= 10):
		return fmt.Errorf("cvssData.baseScore %v is outside 0 to 10", *m.CVSSData.BaseScore)
	case m.CVSSData.VectorString == "":
		return errors.New("cvssData.vectorString missing")
	}
	return nil
}

// better says whether m is preferred to other: NVD's Primary metric over
// a CNA's Secondary one, then the higher score; on a tie the first listed
// stays.
func (m *nvdMetric) better(other nvdMetric) bool {
	if (m.Type == "Primary") != (other.Type == "Primary") {
		return m.Type == "Primary"
	}
	return *m.CVSSData.BaseScore > *other.CVSSData.BaseScore
}

// interner keeps one copy of each repeated string.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}
