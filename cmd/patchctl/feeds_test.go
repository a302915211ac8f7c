package main

import (
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// emptyNVD is a valid NVD CVE JSON 2.0 feed with no vulnerability, for the
// years the test feeds do not cover.
const emptyNVD = `{"resultsPerPage":0,"startIndex":0,"totalResults":0,"format":"NVD_CVE","version":"2.0","timestamp":"2025-08-25T08:00:00.000","vulnerabilities":[]}`

// mirror serves the feeds package's test feeds under the publishers' file
// names, as an MSP's internal mirror would, gzipping NVD and EPSS files.
func mirror(t *testing.T) *httptest.Server {
	t.Helper()
	src := "../../reconciler/feeds/testdata/feeds"
	nvd := regexp.MustCompile(`^nvdcve-2\.0-(.+)\.json\.gz$`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		var body []byte
		var err error
		switch m := nvd.FindStringSubmatch(name); {
		case m != nil:
			body, err = os.ReadFile(filepath.Join(src, "nvdcve-2.0-"+m[1]+".json"))
			if os.IsNotExist(err) {
				body, err = []byte(emptyNVD), nil
			}
		case name == "epss_scores-current.csv.gz":
			body, err = os.ReadFile(filepath.Join(src, "epss_scores-current.csv"))
		default:
			body, err = os.ReadFile(filepath.Join(src, filepath.Base(name)))
		}
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if strings.HasSuffix(name, ".gz") {
			zw := gzip.NewWriter(w)
			zw.Write(body)
			zw.Close()
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFeedsFetchThenPlan(t *testing.T) {
	srv := mirror(t)
	dir := filepath.Join(t.TempDir(), "feeds")
	code, out, errOut := run(t, "feeds", "fetch", "--out", dir, "--mirror", srv.URL)
	if code != 0 {
		t.Fatalf("feeds fetch: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range []string{"known_exploited_vulnerabilities.json", "epss_scores-current.csv.gz", "debian-security-tracker.json", "nvdcve-2.0-2024.json.gz"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not fetched: %v", f, err)
		}
	}
	if !strings.Contains(out, "kev") || strings.Contains(out, "error") {
		t.Errorf("feeds fetch output:\n%s", out)
	}
	// A plan with the fetched feeds runs like the controller's.
	code, _, errOut = run(t, "plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--feeds-dir", dir)
	if code != 0 {
		t.Fatalf("plan --feeds-dir: exit %d\n%s", code, errOut)
	}
}

func TestPlanRefusesABrokenFeed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "known_exploited_vulnerabilities.json"), []byte(`{"vulnerabilities": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--feeds-dir", dir)
	if code == 0 || !strings.Contains(errOut, "known_exploited_vulnerabilities.json") {
		t.Fatalf("plan with a truncated KEV catalog: exit %d, stderr %q; want a failure naming the file", code, errOut)
	}
}
