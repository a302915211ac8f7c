package feeds

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReloadKeepsTheLastGoodCopy: a feed file that breaks after a good
// load does not take its data away; the error names the file and where.
func TestReloadKeepsTheLastGoodCopy(t *testing.T) {
	ctx := context.Background()
	dir := copyFeeds(t)
	s, err := LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	kev := readTestdata(t, KEVFile)
	writeFile(t, dir, KEVFile, kev[:len(kev)-200])
	writeFile(t, dir, "nvdcve-2.0-modified.json", replaceOnce(t, readTestdata(t, "nvdcve-2.0-modified.json"), `"baseScore" : 9.8`, `"baseScore" : 98`))

	next, errs := s.Reload(ctx, dir)
	if len(errs) != 2 {
		t.Fatalf("Reload: %d errors, want 2: %v", len(errs), errs)
	}
	for i, want := range []struct{ file, path, says string }{
		{KEVFile, "vulnerabilities[3]", "unexpected end of file"},
		{"nvdcve-2.0-modified.json", "vulnerabilities[2].cve.metrics.cvssMetricV31[0]", "baseScore 98 is outside 0 to 10"},
	} {
		pe := parseError(t, errs[i])
		if pe.File != filepath.Join(dir, want.file) || pe.Path != want.path || !strings.Contains(pe.Error(), want.says) {
			t.Errorf("error %d: %v; want file %s, path %q, saying %q", i, errs[i], want.file, want.path, want.says)
		}
	}
	if next.kev != s.kev {
		t.Error("the KEV feed is not the last good copy")
	}
	if _, ok := next.KEV("CVE-2024-3400"); !ok {
		t.Error("the last good KEV copy is not in force")
	}
	// CVE-2024-0001 is scored only in the modified file's good copy.
	if got, ok := next.CVSS("CVE-2024-0001"); !ok || got.Score != 9.8 {
		t.Errorf("CVSS(CVE-2024-0001) = %+v, %v; want the last good modified file's 9.8", got, ok)
	}
	// The files that did not change were not parsed again.
	if next.epss != s.epss || next.debian != s.debian || next.nvd[1] != s.nvd[1] {
		t.Error("an unchanged file was parsed again")
	}

	// Once fixed, the new copies are in force.
	writeFile(t, dir, KEVFile, kev)
	writeFile(t, dir, "nvdcve-2.0-modified.json", replaceOnce(t, readTestdata(t, "nvdcve-2.0-modified.json"), `"baseScore" : 9.8`, `"baseScore" : 9.1`))
	fixed, errs := next.Reload(ctx, dir)
	if len(errs) != 0 {
		t.Fatalf("Reload after the fix: %v", errs)
	}
	if fixed.kev == s.kev {
		t.Error("the repaired KEV file was not read")
	}
	if got, _ := fixed.CVSS("CVE-2024-0001"); got.Score != 9.1 {
		t.Errorf("CVSS(CVE-2024-0001) = %+v after the fix, want 9.1", got)
	}
}

// TestLoadDirRefusesWithoutAGoodCopy: with nothing to fall back on, a bad
// file leaves its feed out and the others in.
func TestLoadDirRefusesWithoutAGoodCopy(t *testing.T) {
	dir := copyFeeds(t)
	writeFile(t, dir, "epss_scores-current.csv", "cve,epss,percentile\nCVE-2024-3094,0.8,0.9\n")
	s, err := LoadDir(context.Background(), dir)
	pe := parseError(t, err)
	if pe.File != filepath.Join(dir, "epss_scores-current.csv") || pe.Line != 1 {
		t.Errorf("error %v, want one naming line 1 of the EPSS file", err)
	}
	if s.Files(FeedEPSS) != nil {
		t.Error("the refused EPSS file is in the set")
	}
	if _, ok := s.KEV("CVE-2024-3400"); !ok {
		t.Error("the good KEV file is not in the set")
	}
}

// TestReloadDropsARemovedFeed: removing a feed's file removes the feed.
func TestReloadDropsARemovedFeed(t *testing.T) {
	ctx := context.Background()
	dir := copyFeeds(t)
	s, err := LoadDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{DebianFile, "nvdcve-2.0-2014.json"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	next, errs := s.Reload(ctx, dir)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if next.Files(FeedDebian) != nil {
		t.Error("the Debian feed outlived its file")
	}
	if _, ok := next.CVSS("CVE-2014-0160"); ok {
		t.Error("the 2014 NVD file outlived its file")
	}
	if got := len(next.Files(FeedNVD)); got != 2 {
		t.Errorf("%d NVD files, want 2", got)
	}
}

// TestReloadEPSSTakesTheNewerFile: when both the .csv and the .csv.gz are
// there (the URL changed), the one written last counts.
func TestReloadEPSSTakesTheNewerFile(t *testing.T) {
	csv := readTestdata(t, "epss_scores-current.csv")
	gz := gzipped(t, replaceOnce(t, csv, "CVE-2024-3094,0.84179", "CVE-2024-3094,0.5"))
	earlier := time.Date(2025, 8, 24, 13, 0, 0, 0, time.UTC)
	later := earlier.Add(24 * time.Hour)
	for _, tt := range []struct {
		name, newer string
		want        float64
	}{
		{"the gzipped file written last", EPSSFile, 0.5},
		{"the plain file written last", "epss_scores-current.csv", 0.84179},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "epss_scores-current.csv", csv)
			writeFile(t, dir, EPSSFile, string(gz))
			for _, name := range []string{"epss_scores-current.csv", EPSSFile} {
				mtime := earlier
				if name == tt.newer {
					mtime = later
				}
				if err := os.Chtimes(filepath.Join(dir, name), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			s, err := LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if files := s.Files(FeedEPSS); len(files) != 1 || files[0].Name != tt.newer {
				t.Errorf("EPSS read from %+v, want %s", files, tt.newer)
			}
			if got, _ := s.EPSS("CVE-2024-3094"); got.Score != tt.want {
				t.Errorf("score %v, want %v", got.Score, tt.want)
			}
		})
	}
}

// TestReloadOfAnUnreadableDirectory keeps the set as it was.
func TestReloadOfAnUnreadableDirectory(t *testing.T) {
	s, err := LoadDir(context.Background(), feedDir)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "a-file")
	writeFile(t, filepath.Dir(file), "a-file", "")
	next, errs := s.Reload(context.Background(), file)
	if next != s || len(errs) != 1 {
		t.Fatalf("Reload of a file as a directory: %v, %v", next == s, errs)
	}
	var pe *ParseError
	if errors.As(errs[0], &pe) {
		t.Errorf("a directory that cannot be read is not a parse error: %v", errs[0])
	}
}
