package feeds

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNVDChoosesOneScorePerCVE(t *testing.T) {
	s, err := LoadDir(context.Background(), feedDir)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		ts, err := parseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	const (
		yearly   = "nvdcve-2.0-2024.json"
		modified = "nvdcve-2.0-modified.json"
		crit     = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"
	)
	tests := []struct {
		name string
		cve  string
		want *CVSS // nil: no score
	}{{
		name: "CVSS v4.0 wins over NVD's own v3.1",
		cve:  "CVE-2024-3400",
		want: &CVSS{Score: 10, Version: "4.0", Source: "psirt@paloaltonetworks.com",
			Vector:       "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:A/AU:Y/R:U/V:C/RE:H/U:Red",
			LastModified: at("2025-02-21T15:23:47.257"), File: yearly},
	}, {
		name: "of two CNA scores the higher, and v3.1 over NVD's v3.0",
		cve:  "CVE-2024-6387",
		want: &CVSS{Score: 9.8, Version: "3.1", Source: "cna@example.org", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
			LastModified: at("2025-02-11T16:45:22.700"), File: yearly},
	}, {
		name: "v3.0 when there is no v3.1, even from the CNA over NVD's v2",
		cve:  "CVE-2024-21626",
		want: &CVSS{Score: 8.6, Version: "3.0", Source: "security-advisories@github.com", Vector: "CVSS:3.0/AV:L/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H",
			LastModified: at("2024-11-21T08:54:45.000"), File: yearly},
	}, {
		name: "v2 only for an old CVE",
		cve:  "CVE-2014-0160",
		want: &CVSS{Score: 5, Version: "2.0", Source: "nvd@nist.gov", Vector: "AV:N/AC:L/Au:N/C:P/I:N/A:N",
			LastModified: at("2025-04-12T10:46:40.837"), File: "nvdcve-2.0-2014.json"},
	}, {
		name: "the modified file's newer record adds NVD's Primary metric",
		cve:  "CVE-2024-3094",
		want: &CVSS{Score: 10, Version: "3.1", Source: "nvd@nist.gov", Vector: crit,
			LastModified: at("2025-08-21T14:22:10.517"), File: modified},
	}, {
		name: "awaiting analysis in the yearly file, scored in the modified one",
		cve:  "CVE-2024-0001",
		want: &CVSS{Score: 9.8, Version: "3.1", Source: "nvd@nist.gov", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
			LastModified: at("2025-08-20T16:09:31.120"), File: modified},
	}, {
		name: "rejected since: the newer record has no score, so none",
		cve:  "CVE-2024-0002",
	}, {
		name: "a modified record older than the yearly one does not win",
		cve:  "CVE-2024-0003",
		want: &CVSS{Score: 7.2, Version: "3.1", Source: "nvd@nist.gov", Vector: "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H",
			LastModified: at("2024-09-26T13:32:55.343"), File: yearly},
	}, {
		name: "only in the modified file",
		cve:  "CVE-2021-44228",
		want: &CVSS{Score: 10, Version: "3.1", Source: "nvd@nist.gov", Vector: crit,
			LastModified: at("2025-08-22T18:15:38.470"), File: modified},
	}, {
		name: "a CVE no file lists",
		cve:  "CVE-2099-0001",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.CVSS(tt.cve)
			if tt.want == nil {
				if ok {
					t.Fatalf("CVSS(%s) = %+v, want none", tt.cve, got)
				}
				return
			}
			if !ok {
				t.Fatalf("CVSS(%s): none, want %+v", tt.cve, *tt.want)
			}
			if diff := cmp.Diff(*tt.want, got); diff != "" {
				t.Errorf("CVSS(%s) (-want +got):\n%s", tt.cve, diff)
			}
		})
	}
}

func TestNVDReadsTheFeedHeader(t *testing.T) {
	f, err := parseNVD(context.Background(), "nvdcve-2.0-2024.json", strings.NewReader(readTestdata(t, "nvdcve-2.0-2024.json")))
	if err != nil {
		t.Fatal(err)
	}
	want := File{Feed: FeedNVD, Version: "2.0", Entries: 7, Published: time.Date(2025, 8, 25, 3, 0, 1, 827456100, time.UTC)}
	if diff := cmp.Diff(want, f.file); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
}

func TestNVDRefusesABrokenFeed(t *testing.T) {
	const name = "nvdcve-2.0-2024.json"
	good := readTestdata(t, name)
	tests := []refusal{{
		name:   "the download stopped half way",
		mutate: func(t *testing.T, s string) string { return s[:len(s)/2] },
		want:   "unexpected end of file",
	}, {
		name:   "an NVD CPE feed, not a CVE feed",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"NVD_CVE"`, `"NVD_CPE"`) },
		path:   "format",
		want:   `"NVD_CPE", expected "NVD_CVE"`,
	}, {
		name: "the retired 1.1 feed format",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"version" : "2.0",`, `"version" : "1.1",`)
		},
		path: "version",
		want: `"1.1", expected "2.0"`,
	}, {
		name:   "no format field",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"format" : "NVD_CVE",`, ``) },
		want:   `no "format": not an NVD CVE feed`,
	}, {
		name:   "a base score above 10",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"baseScore" : 8.6`, `"baseScore" : 86`) },
		path:   "vulnerabilities[3].cve.metrics.cvssMetricV30[0]",
		want:   "cvssData.baseScore 86 is outside 0 to 10",
	}, {
		name: "a base score written as text",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"baseScore" : 8.6`, `"baseScore" : "8.6"`)
		},
		path: "vulnerabilities[3].cve.metrics.cvssMetricV30.cvssData.baseScore",
		want: "a JSON string where the format has a number",
	}, {
		name: "a v3.1 metric in the v4.0 array",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"version" : "4.0"`, `"version" : "3.1"`)
		},
		path: "vulnerabilities[1].cve.metrics.cvssMetricV40[0]",
		want: `cvssData.version "3.1" in the array of CVSS 4.0 metrics`,
	}, {
		name: "a metric neither Primary nor Secondary",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"type" : "Primary"`, `"type" : "Tertiary"`)
		},
		path: "vulnerabilities[1].cve.metrics.cvssMetricV31[0]",
		want: `type "Tertiary"`,
	}, {
		name: "a malformed CVE id",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"id" : "CVE-2024-6387"`, `"id" : "CVE-2024-63"`)
		},
		path: "vulnerabilities[2].cve.id",
		want: `"CVE-2024-63" is not a CVE id`,
	}, {
		name: "a lastModified that is not a date-time",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"lastModified" : "2025-02-06T09:15:10.820"`, `"lastModified" : "last Tuesday"`)
		},
		path: "vulnerabilities[0].cve.lastModified",
		want: "not a date-time",
	}, {
		name: "garbled bytes in a record",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"vulnStatus" : "Analyzed"`, `"vulnStatus" : Analyzed`)
		},
		path: "vulnerabilities[1]",
		want: "invalid character",
	}, {
		name:   "a KEV catalog saved under an NVD name",
		mutate: func(t *testing.T, s string) string { return readTestdata(t, KEVFile) },
		path:   "vulnerabilities[0].cve.id",
		want:   `"" is not a CVE id`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseNVD(context.Background(), name, strings.NewReader(tt.mutate(t, good)))
			checkRefusal(t, tt, name, err)
		})
	}
}

// TestNVDStopsWhenCancelled: a long parse ends with the context.
func TestNVDStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := parseNVD(ctx, "nvdcve-2.0-big.json", newNVDStream(5000))
	if err != context.Canceled {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestNVDGzip reads a gzipped feed file from a directory.
func TestNVDGzip(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "nvdcve-2.0-2024.json.gz", string(gzipped(t, readTestdata(t, "nvdcve-2.0-2024.json"))))
	s, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.CVSS("CVE-2024-3400"); !ok || got.File != "nvdcve-2.0-2024.json.gz" {
		t.Errorf("CVSS(CVE-2024-3400) = %+v, %v", got, ok)
	}
}
