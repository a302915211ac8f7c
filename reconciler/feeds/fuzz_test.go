package feeds

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/patchline/patchline/protocol"
)

// The fuzz targets feed arbitrary bytes to each parser, seeded with the
// publisher-format excerpts: a parser must never panic, and must return
// either a *ParseError or a result that holds only valid data.

func FuzzKEV(f *testing.F) {
	f.Add([]byte(readTestdata(f, KEVFile)))
	f.Add([]byte(`{"catalogVersion":"1","dateReleased":"2025-08-25T17:04:19Z","count":0,"vulnerabilities":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzParse(t, FeedKEV, data)
		if p == nil {
			return
		}
		kev := p.(*kevFeed)
		if kev.file.Entries != len(kev.entries) {
			t.Errorf("Entries %d, %d entries", kev.file.Entries, len(kev.entries))
		}
		for id, e := range kev.entries {
			if id != e.CVE || !protocol.ValidCVE(id) || e.DateAdded.IsZero() || e.DueDate.IsZero() {
				t.Errorf("invalid entry %q: %+v", id, e)
			}
		}
	})
}

func FuzzEPSS(f *testing.F) {
	csv := readTestdata(f, "epss_scores-current.csv")
	f.Add([]byte(csv))
	f.Add(gzipped(f, csv))
	f.Add([]byte("#model_version:v2023.03.01,score_date:2023-03-07T00:00:00+0000\ncve,epss,percentile\nCVE-2024-3094,1,0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzParse(t, FeedEPSS, data)
		if p == nil {
			return
		}
		epss := p.(*epssFeed)
		if epss.file.Published.IsZero() || len(epss.scores) == 0 {
			t.Errorf("accepted without a score date or scores: %+v", epss.file)
		}
		for id, e := range epss.scores {
			if !protocol.ValidCVE(id) || !(e.Score >= 0 && e.Score <= 1) || !(e.Percentile >= 0 && e.Percentile <= 1) {
				t.Errorf("invalid score %q: %+v", id, e)
			}
		}
	})
}

func FuzzNVD(f *testing.F) {
	for _, name := range []string{"nvdcve-2.0-2014.json", "nvdcve-2.0-2024.json", "nvdcve-2.0-modified.json"} {
		f.Add([]byte(readTestdata(f, name)))
	}
	f.Add(gzipped(f, readTestdata(f, "nvdcve-2.0-2014.json")))
	f.Add([]byte(`{"format":"NVD_CVE","version":"2.0","timestamp":"2025-08-25T03:00:01","vulnerabilities":[{"cve":{"id":"CVE-2024-0001","lastModified":"2025-01-01T00:00:00","metrics":{"cvssMetricV2":[{"type":"Primary","cvssData":{"version":"2.0","vectorString":"AV:N","baseScore":0}}]}}}]}`))
	versions := []string{"4.0", "3.1", "3.0", "2.0"}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzParse(t, FeedNVD, data)
		if p == nil {
			return
		}
		nvd := p.(*nvdFile)
		if nvd.file.Version != "2.0" || nvd.file.Published.IsZero() {
			t.Errorf("accepted with version %q, timestamp %v", nvd.file.Version, nvd.file.Published)
		}
		for id, r := range nvd.records {
			if !protocol.ValidCVE(id) || r.modified.IsZero() {
				t.Errorf("invalid record %q: %+v", id, r)
			}
			if r.version != "" && (!slices.Contains(versions, r.version) || !(r.score >= 0 && r.score <= 10) || r.vector == "") {
				t.Errorf("invalid metric for %q: %+v", id, r)
			}
		}
	})
}

func FuzzDebian(f *testing.F) {
	f.Add([]byte(readTestdata(f, DebianFile)))
	f.Add([]byte(`{"p":{"TEMP-0000000-1":{},"CVE-2024-0001":{"releases":{"sid":{"status":"open"}}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzParse(t, FeedDebian, data)
		if p == nil {
			return
		}
		deb := p.(*debianFeed)
		if deb.file.Entries == 0 || !slices.IsSorted(deb.releases) || len(deb.releases) != len(deb.byRelease) {
			t.Errorf("accepted with %d entries, releases %q", deb.file.Entries, deb.releases)
		}
		for release, pkgs := range deb.byRelease {
			for pkg, recs := range pkgs {
				if release == "" || pkg == "" {
					t.Errorf("empty release %q or package %q", release, pkg)
				}
				for i, r := range recs {
					if !protocol.ValidCVE(r.cve) || (r.status != "resolved" && r.status != "open" && r.status != "undetermined") {
						t.Errorf("invalid record %s/%s: %+v", release, pkg, r)
					}
					if i > 0 && compareCVE(recs[i-1].cve, r.cve) >= 0 {
						t.Errorf("%s/%s: records not sorted by CVE: %s before %s", release, pkg, recs[i-1].cve, r.cve)
					}
				}
			}
		}
	})
}

// fuzzParse parses data as feed, failing the test on an error that is not
// a *ParseError naming the file; it returns nil when data was refused.
func fuzzParse(t *testing.T, feed Feed, data []byte) part {
	const name = "fuzzed-feed-file"
	p, err := parse(context.Background(), feed, name, bytes.NewReader(data))
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || pe.File != name || !strings.HasPrefix(err.Error(), name+":") {
			t.Fatalf("error %v (%T) is not a *ParseError naming the file", err, err)
		}
		return nil
	}
	if p == nil {
		t.Fatal("neither a result nor an error")
	}
	return p
}
