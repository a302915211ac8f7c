package feeds

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestKEVReadsTheFullCatalog parses CISA's real catalog of 2025-08-25,
// all 1,404 entries, as published.
func TestKEVReadsTheFullCatalog(t *testing.T) {
	f, err := os.Open("testdata/cisa-kev/" + KEVFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kev, err := parseKEV(context.Background(), KEVFile, f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kev.file.Entries, 1404; got != want {
		t.Errorf("%d entries, want %d", got, want)
	}
	if got, want := kev.file.Version, "2025.08.25"; got != want {
		t.Errorf("catalogVersion %q, want %q", got, want)
	}
	if want := time.Date(2025, 8, 25, 17, 4, 19, 979600000, time.UTC); !kev.file.Published.Equal(want) {
		t.Errorf("dateReleased %v, want %v", kev.file.Published, want)
	}
	ransomware := 0
	for _, e := range kev.entries {
		if e.Ransomware {
			ransomware++
		}
	}
	if ransomware != 293 {
		t.Errorf("%d entries known to be used by ransomware, want 293", ransomware)
	}
	want := KEVEntry{
		CVE:               "CVE-2025-48384",
		VendorProject:     "Git",
		Product:           "Git",
		VulnerabilityName: "Git Link Following Vulnerability",
		DateAdded:         time.Date(2025, 8, 25, 0, 0, 0, 0, time.UTC),
		DueDate:           time.Date(2025, 9, 15, 0, 0, 0, 0, time.UTC),
	}
	if diff := cmp.Diff(want, kev.entries["CVE-2025-48384"]); diff != "" {
		t.Errorf("CVE-2025-48384 (-want +got):\n%s", diff)
	}
}

func TestKEVRefusesABrokenCatalog(t *testing.T) {
	good := readTestdata(t, KEVFile)
	tests := []refusal{{
		name:   "the download stopped half way",
		mutate: func(t *testing.T, s string) string { return s[:len(s)/2] },
		want:   "unexpected end of file",
	}, {
		name:   "count says more entries than the catalog lists",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"count": 4`, `"count": 5`) },
		path:   "count",
		want:   "says 5 vulnerabilities, the catalog lists 4",
	}, {
		name: "a CVE id without its four-digit year",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"cveID": "CVE-2024-3400"`, `"cveID": "CVE-24-3400"`)
		},
		path: "vulnerabilities[1].cveID",
		want: `"CVE-24-3400" is not a CVE id`,
	}, {
		name: "a date written the American way",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"dateAdded": "2024-04-12"`, `"dateAdded": "04/12/2024"`)
		},
		path: "vulnerabilities[1].dateAdded",
		want: "not a date",
	}, {
		name: "an entry without its due date",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"dueDate": "2025-09-15",`, ``)
		},
		path: "vulnerabilities[0].dueDate",
		want: "missing",
	}, {
		name: "ransomware use that is neither Known nor Unknown",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"knownRansomwareCampaignUse": "Known"`, `"knownRansomwareCampaignUse": "Yes"`)
		},
		path: "vulnerabilities[1].knownRansomwareCampaignUse",
		want: `"Yes" is neither`,
	}, {
		name: "the same CVE listed twice",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"cveID": "CVE-2024-3400"`, `"cveID": "CVE-2025-48384"`)
		},
		path: "vulnerabilities[1].cveID",
		want: "listed twice",
	}, {
		name:   "a count that is text",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"count": 4`, `"count": "4"`) },
		path:   "count",
		want:   "a JSON string where the format has an integer",
	}, {
		name:   "an NVD feed saved under the KEV name",
		mutate: func(t *testing.T, s string) string { return readTestdata(t, "nvdcve-2.0-2014.json") },
		path:   "vulnerabilities[0].cveID",
		want:   "missing",
	}, {
		name:   "garbled bytes in the middle",
		mutate: func(t *testing.T, s string) string { return s[:2000] + "\x00\x01garbage" + s[2000:] },
		want:   "invalid character",
	}, {
		name:   "a second document after the catalog",
		mutate: func(t *testing.T, s string) string { return s + "{}" },
		want:   "after the end of the document",
	}, {
		name: "vulnerabilities that are not a list",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"vulnerabilities": [`, `"vulnerabilities": {"x": [`)
		},
		path: "vulnerabilities",
		want: "expected an array",
	}, {
		name:   "an empty file",
		mutate: func(t *testing.T, s string) string { return "" },
		want:   "unexpected end of file",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseKEV(context.Background(), KEVFile, strings.NewReader(tt.mutate(t, good)))
			checkRefusal(t, tt, KEVFile, err)
		})
	}
}
