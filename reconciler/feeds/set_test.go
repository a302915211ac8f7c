package feeds

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/protocol"
)

// TestLookupsOnNoFeedsFindNothing: a controller that has not fetched yet,
// or lacks one feed, answers "unknown", never a zero that looks like data.
func TestLookupsOnNoFeedsFindNothing(t *testing.T) {
	for name, s := range map[string]*Set{"nil set": nil, "empty set": {}} {
		t.Run(name, func(t *testing.T) {
			if _, ok := s.KEV("CVE-2024-3400"); ok {
				t.Error("KEV found something")
			}
			if _, ok := s.EPSS("CVE-2024-3400"); ok {
				t.Error("EPSS found something")
			}
			if _, ok := s.CVSS("CVE-2024-3400"); ok {
				t.Error("CVSS found something")
			}
			if got := s.DebianCVEs("openssh", "bookworm", "1:9.2p1-2", "1:9.2p1-2+deb12u6"); got != nil {
				t.Errorf("DebianCVEs found %v", got)
			}
			if got := s.DebianFixes("openssh", "CVE-2024-6387"); got != nil {
				t.Errorf("DebianFixes found %v", got)
			}
			for _, feed := range All {
				if got := s.Files(feed); got != nil {
					t.Errorf("Files(%s) = %v", feed, got)
				}
			}
		})
	}
}

func TestLoadDirReadsEveryFeed(t *testing.T) {
	s, err := LoadDir(context.Background(), feedDir)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		ts, err := parseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	want := map[Feed][]File{
		FeedKEV:  {{Feed: FeedKEV, Name: KEVFile, Published: at("2025-08-25T17:04:19.9796Z"), Version: "2025.08.25", Entries: 4}},
		FeedEPSS: {{Feed: FeedEPSS, Name: "epss_scores-current.csv", Published: at("2025-08-25T12:55:00Z"), Version: "v2025.03.14", Entries: 11}},
		FeedNVD: {
			{Feed: FeedNVD, Name: "nvdcve-2.0-2014.json", Published: at("2025-08-25T03:00:01.9012345"), Version: "2.0", Entries: 1},
			{Feed: FeedNVD, Name: "nvdcve-2.0-2024.json", Published: at("2025-08-25T03:00:01.8274561"), Version: "2.0", Entries: 7},
			{Feed: FeedNVD, Name: "nvdcve-2.0-modified.json", Published: at("2025-08-25T14:00:02.3401120"), Version: "2.0", Entries: 5},
		},
		// The tracker's JSON carries no date: Published stays unknown.
		FeedDebian: {{Feed: FeedDebian, Name: DebianFile, Entries: 7}},
	}
	for _, feed := range All {
		files := s.Files(feed)
		for i, f := range files {
			info, err := os.Stat(filepath.Join(feedDir, f.Name))
			if err != nil {
				t.Fatal(err)
			}
			if f.Size != info.Size() || !f.ModTime.Equal(info.ModTime()) {
				t.Errorf("%s: size %d, modified %v; the file has %d, %v", f.Name, f.Size, f.ModTime, info.Size(), info.ModTime())
			}
			files[i].Size, files[i].ModTime = 0, time.Time{}
		}
		if diff := cmp.Diff(want[feed], files, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Files(%s) (-want +got):\n%s", feed, diff)
		}
	}

	kev, ok := s.KEV("CVE-2024-3400")
	wantKEV := KEVEntry{
		CVE: "CVE-2024-3400", VendorProject: "Palo Alto Networks", Product: "PAN-OS",
		VulnerabilityName: "Palo Alto Networks PAN-OS Command Injection Vulnerability",
		DateAdded:         time.Date(2024, 4, 12, 0, 0, 0, 0, time.UTC),
		DueDate:           time.Date(2024, 4, 19, 0, 0, 0, 0, time.UTC),
		Ransomware:        true,
	}
	if diff := cmp.Diff(wantKEV, kev); !ok || diff != "" {
		t.Errorf("KEV(CVE-2024-3400) found %v (-want +got):\n%s", ok, diff)
	}
	if _, ok := s.KEV("CVE-2024-3094"); ok {
		t.Error("CVE-2024-3094 is not in the catalog, KEV found it")
	}
	if got, ok := s.EPSS("CVE-2021-44228"); !ok || got != (EPSS{Score: 0.94358, Percentile: 0.99957}) {
		t.Errorf("EPSS(CVE-2021-44228) = %+v, %v", got, ok)
	}
}

// TestLoadDirWithoutFeeds: a feed directory that does not exist yet (no
// fetch has run) or lacks some feeds is not an error.
func TestLoadDirWithoutFeeds(t *testing.T) {
	s, err := LoadDir(context.Background(), filepath.Join(t.TempDir(), "not-yet"))
	if err != nil || s == nil {
		t.Fatalf("LoadDir of a missing directory: %v, %v", s, err)
	}
	dir := t.TempDir()
	writeFile(t, dir, KEVFile, readTestdata(t, KEVFile))
	writeFile(t, dir, "README.txt", "not a feed")
	s, err = LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.KEV("CVE-2024-3400"); !ok {
		t.Error("the KEV feed did not load")
	}
	for _, feed := range []Feed{FeedEPSS, FeedNVD, FeedDebian} {
		if s.Files(feed) != nil {
			t.Errorf("feed %s is there without its file", feed)
		}
	}
}

func TestCompareCVE(t *testing.T) {
	ordered := []string{"CVE-1999-0001", "CVE-2024-0001", "CVE-2024-9999", "CVE-2024-10000", "CVE-2025-0001", "TEMP-0000000-1"}
	for i := range ordered {
		for j := range ordered {
			got, want := compareCVE(ordered[i], ordered[j]), cmpInt(i, j)
			if (got < 0) != (want < 0) || (got > 0) != (want > 0) {
				t.Errorf("compareCVE(%s, %s) = %d, want the sign of %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func cmpInt(a, b int) int { return a - b }

func TestValidCVE(t *testing.T) {
	for id, want := range map[string]bool{
		"CVE-2024-3094":                 true,
		"CVE-2024-10000":                true,
		"CVE-1999-0001":                 true,
		"CVE-2024-1234567890123456789":  true,
		"CVE-2024-12345678901234567890": false,
		"CVE-2024-123":                  false,
		"CVE-24-1234":                   false,
		"cve-2024-3094":                 false,
		"CVE-2024-3094 ":                false,
		"CVE-2024-":                     false,
		"CVE-2024-３０９４":                 false,
		"TEMP-0000000-9D8E7F":           false,
		"":                              false,
	} {
		if got := protocol.ValidCVE(id); got != want {
			t.Errorf("protocol.ValidCVE(%q) = %v, want %v", id, got, want)
		}
	}
}
