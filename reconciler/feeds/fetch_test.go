package feeds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/internal/clock"
)

// feedServer serves feed files over real HTTP on loopback the way the
// publishers do: with an ETag and Last-Modified, answering conditional
// requests with 304 (http.ServeContent does that part).
type feedServer struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex // guards the fields below
	// files maps a URL path to what it serves.
	files map[string]*served
	// seen records the conditional headers of every request, by path.
	seen map[string][]http.Header
}

type served struct {
	body     []byte
	modified time.Time
	noETag   bool // like the Debian tracker, Last-Modified only
	status   int  // answer this instead of the file (404, ...)
	failures int  // answer this many 500s before the file
}

// The URL paths of the test server, the publishers' own paths.
const (
	kevPath    = "/sites/default/files/feeds/known_exploited_vulnerabilities.json"
	epssPath   = "/epss_scores-current.csv.gz"
	nvdPath    = "/feeds/json/cve/2.0/nvdcve-2.0-2024.json.gz"
	nvdModPath = "/feeds/json/cve/2.0/nvdcve-2.0-modified.json.gz"
	debianPath = "/tracker/data/json"
)

func newFeedServer(t *testing.T) *feedServer {
	fs := &feedServer{t: t, files: make(map[string]*served), seen: make(map[string][]http.Header)}
	fs.srv = httptest.NewServer(fs)
	t.Cleanup(fs.srv.Close)
	fs.serve(kevPath, []byte(readTestdata(t, KEVFile)))
	fs.serve(epssPath, gzipped(t, readTestdata(t, "epss_scores-current.csv")))
	fs.serve(nvdPath, gzipped(t, readTestdata(t, "nvdcve-2.0-2024.json")))
	fs.serve(nvdModPath, gzipped(t, readTestdata(t, "nvdcve-2.0-modified.json")))
	fs.serve(debianPath, []byte(readTestdata(t, DebianFile)))
	fs.files[debianPath].noETag = true
	return fs
}

// serve publishes a new version of path.
func (fs *feedServer) serve(path string, body []byte) *served {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s := &served{body: body, modified: time.Date(2025, 8, 25, 12, 0, 0, 0, time.UTC)}
	if old := fs.files[path]; old != nil {
		s.noETag = old.noETag
		s.modified = old.modified.Add(time.Hour)
	}
	fs.files[path] = s
	return s
}

func (fs *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.seen[r.URL.Path] = append(fs.seen[r.URL.Path], http.Header{
		"If-None-Match":     r.Header.Values("If-None-Match"),
		"If-Modified-Since": r.Header.Values("If-Modified-Since"),
	})
	s := fs.files[r.URL.Path]
	switch {
	case s == nil:
		http.NotFound(w, r)
		return
	case s.failures > 0:
		s.failures--
		http.Error(w, "upstream timed out", http.StatusInternalServerError)
		return
	case s.status != 0:
		http.Error(w, http.StatusText(s.status), s.status)
		return
	}
	if !s.noETag {
		w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, s.modified.Unix(), len(s.body)))
	}
	http.ServeContent(w, r, "", s.modified, bytes.NewReader(s.body))
}

// requests returns the conditional headers sent for path, request by
// request.
func (fs *feedServer) requests(path string) []http.Header {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.seen[path]
}

func (fs *feedServer) config() FetchConfig {
	u := fs.srv.URL
	return FetchConfig{
		KEV:          u + kevPath,
		EPSS:         u + epssPath,
		NVD:          []string{u + nvdPath, u + nvdModPath},
		Debian:       u + debianPath,
		Retries:      2,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		Timeout:      10 * time.Second,
		Clock:        clock.NewFake(time.Date(2025, 8, 25, 13, 0, 0, 0, time.UTC)),
	}
}

// outcomes lists a report's outcomes by file name.
func outcomes(rep Report) map[string]Outcome {
	m := make(map[string]Outcome)
	for _, f := range rep.Files {
		m[f.File] = f.Outcome
	}
	return m
}

func allOutcomes(o Outcome) map[string]Outcome {
	return map[string]Outcome{
		KEVFile: o, EPSSFile: o, "nvdcve-2.0-2024.json.gz": o, "nvdcve-2.0-modified.json.gz": o, DebianFile: o,
	}
}

// TestFetchDownloadsThenAsksWhetherChanged: the first fetch downloads
// every feed; the second asks with the validators it kept and leaves the
// files alone on 304.
func TestFetchDownloadsThenAsksWhetherChanged(t *testing.T) {
	ctx := context.Background()
	fs := newFeedServer(t)
	dir := filepath.Join(t.TempDir(), "feeds")

	rep, err := Fetch(ctx, fs.config(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allOutcomes(OutcomeOK), outcomes(rep)); diff != "" {
		t.Errorf("first fetch (-want +got):\n%s", diff)
	}
	s, err := LoadDir(ctx, dir)
	if err != nil {
		t.Fatalf("LoadDir after the fetch: %v", err)
	}
	if _, ok := s.KEV("CVE-2024-3400"); !ok {
		t.Error("the fetched KEV catalog lacks CVE-2024-3400")
	}
	if got, ok := s.CVSS("CVE-2024-0001"); !ok || got.File != "nvdcve-2.0-modified.json.gz" {
		t.Errorf("CVSS(CVE-2024-0001) = %+v, %v; want it from the fetched modified file", got, ok)
	}
	before := mtimes(t, dir)

	rep, err = Fetch(ctx, fs.config(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allOutcomes(OutcomeUnchanged), outcomes(rep)); diff != "" {
		t.Errorf("second fetch (-want +got):\n%s", diff)
	}
	for _, path := range []string{kevPath, epssPath, nvdPath, nvdModPath, debianPath} {
		reqs := fs.requests(path)
		if len(reqs) != 2 {
			t.Fatalf("%s: %d requests, want 2", path, len(reqs))
		}
		if reqs[0].Get("If-None-Match") != "" || reqs[0].Get("If-Modified-Since") != "" {
			t.Errorf("%s: the first request was conditional: %v", path, reqs[0])
		}
		second := reqs[1].Get("If-None-Match")
		if path == debianPath {
			second = reqs[1].Get("If-Modified-Since")
		}
		if second == "" {
			t.Errorf("%s: the second request was not conditional: %v", path, reqs[1])
		}
	}
	if diff := cmp.Diff(before, mtimes(t, dir)); diff != "" {
		t.Errorf("files changed on 304 (-before +after):\n%s", diff)
	}

	// A new version is downloaded again.
	fs.serve(kevPath, []byte(strings.Replace(readTestdata(t, KEVFile), `"catalogVersion": "2025.08.25"`, `"catalogVersion": "2025.08.26"`, 1)))
	rep, err = Fetch(ctx, fs.config(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep)[KEVFile]; got != OutcomeOK {
		t.Errorf("a new catalog: %s, want ok", got)
	}
	if s, _ = LoadDir(ctx, dir); s.Files(FeedKEV)[0].Version != "2025.08.26" {
		t.Errorf("the new catalog is not in place: %+v", s.Files(FeedKEV))
	}
}

// cmpSorted compares string slices regardless of order.
var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// mtimes lists the modification times of the files in dir.
func mtimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]time.Time)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = info.ModTime()
	}
	return m
}

// TestFetchRefusesABadDownload: whatever is wrong with the new copy, the
// old one stays, byte for byte, and no temporary file is left behind.
func TestFetchRefusesABadDownload(t *testing.T) {
	kev := readTestdata(t, KEVFile)
	epss := gzipped(t, readTestdata(t, "epss_scores-current.csv"))
	tests := []struct {
		name, path, file string
		body             []byte
		want             string
	}{
		{"a garbled catalog", kevPath, KEVFile, []byte(kev[:1000] + "\x00garbage" + kev[1000:]), "invalid character"},
		{"a truncated gzip", epssPath, EPSSFile, epss[:len(epss)-10], "unexpected end of file"},
		{"a score out of range", nvdModPath, "nvdcve-2.0-modified.json.gz",
			gzipped(t, strings.Replace(readTestdata(t, "nvdcve-2.0-modified.json"), `"baseScore" : 9.8`, `"baseScore" : 98`, 1)), "outside 0 to 10"},
		{"an error page with status 200", debianPath, DebianFile, []byte("<html>Service Unavailable</html>"), "invalid character '<'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fs := newFeedServer(t)
			dir := t.TempDir()
			if _, err := Fetch(ctx, fs.config(), dir); err != nil {
				t.Fatal(err)
			}
			good, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			fs.serve(tt.path, tt.body)
			rep, err := Fetch(ctx, fs.config(), dir)
			if err == nil {
				t.Fatal("Fetch accepted the bad download")
			}
			for _, want := range []string{tt.file, fs.srv.URL + tt.path, "refused, the old copy stays", tt.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			parseError(t, err)
			wantOutcomes := allOutcomes(OutcomeUnchanged)
			wantOutcomes[tt.file] = OutcomeError
			if diff := cmp.Diff(wantOutcomes, outcomes(rep)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if now, _ := os.ReadFile(filepath.Join(dir, tt.file)); !bytes.Equal(now, good) {
				t.Error("the old copy was replaced")
			}
			for name := range mtimes(t, dir) {
				if strings.Contains(name, ".tmp-") {
					t.Errorf("temporary file %s left behind", name)
				}
			}
		})
	}
}

// TestFetchRefusesABadFirstDownload: with no old copy, nothing is written.
func TestFetchRefusesABadFirstDownload(t *testing.T) {
	fs := newFeedServer(t)
	gz := gzipped(t, readTestdata(t, "epss_scores-current.csv"))
	fs.serve(epssPath, gz[:len(gz)/2])
	dir := t.TempDir()
	cfg := FetchConfig{EPSS: fs.srv.URL + epssPath}
	if _, err := Fetch(context.Background(), cfg, dir); err == nil {
		t.Fatal("Fetch accepted a truncated gzip")
	}
	if files := mtimes(t, dir); len(files) != 0 {
		t.Errorf("files left after a refused first download: %v", files)
	}
}

// TestFetchRetriesServerErrors: a 500 is retried, a 404 is not, and
// retries are bounded.
func TestFetchRetriesServerErrors(t *testing.T) {
	tests := []struct {
		name         string
		failures     int
		status       int
		wantOutcome  Outcome
		wantRequests int
	}{
		{"a 500 retried, then the file", 2, 0, OutcomeOK, 3},
		{"500s beyond the retries", 5, 0, OutcomeError, 3},
		{"a 404 is final", 0, http.StatusNotFound, OutcomeError, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFeedServer(t)
			s := fs.serve(epssPath, gzipped(t, readTestdata(t, "epss_scores-current.csv")))
			s.failures, s.status = tt.failures, tt.status
			cfg := fs.config()
			cfg.KEV, cfg.NVD, cfg.Debian = "", nil, ""
			rep, err := Fetch(context.Background(), cfg, t.TempDir())
			if got := rep.Files[0].Outcome; got != tt.wantOutcome {
				t.Errorf("outcome %s (%v), want %s", got, err, tt.wantOutcome)
			}
			if (err != nil) != (tt.wantOutcome == OutcomeError) {
				t.Errorf("error %v with outcome %s", err, tt.wantOutcome)
			}
			if got := len(fs.requests(epssPath)); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

// TestFetchReportSumsUpPerFeed: what the caller turns into
// patchline_feed_last_success_timestamp_seconds and
// patchline_feed_errors_total.
func TestFetchReportSumsUpPerFeed(t *testing.T) {
	fs := newFeedServer(t)
	dir := t.TempDir()
	if _, err := Fetch(context.Background(), fs.config(), dir); err != nil {
		t.Fatal(err)
	}
	fs.serve(nvdModPath, []byte("not gzip, not JSON"))
	fs.serve(kevPath, []byte(readTestdata(t, KEVFile)))
	cfg := fs.config()
	rep, err := Fetch(context.Background(), cfg, dir)
	if err == nil {
		t.Fatal("no error for the broken NVD file")
	}
	at := cfg.Clock.Now()
	want := []FeedResult{
		{Feed: FeedKEV, Outcome: OutcomeOK, At: at},
		{Feed: FeedEPSS, Outcome: OutcomeUnchanged, At: at},
		{Feed: FeedNVD, Outcome: OutcomeError, At: at, Errors: 1},
		{Feed: FeedDebian, Outcome: OutcomeUnchanged, At: at},
	}
	if diff := cmp.Diff(want, rep.Feeds()); diff != "" {
		t.Errorf("Feeds() (-want +got):\n%s", diff)
	}
}

func TestFetchConfigRefusesWhatItCannotName(t *testing.T) {
	for name, cfg := range map[string]FetchConfig{
		"an NVD URL that is not a feed file": {NVD: []string{"https://nvd.example/feeds/cve.json"}},
		"two URLs saved under one name":      {NVD: []string{"https://a.example/nvdcve-2.0-2024.json.gz", "https://b.example/nvdcve-2.0-2024.json.gz"}},
		"a URL that is not HTTP":             {KEV: "ftp://cisa.example/kev.json"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "feeds")
			if _, err := Fetch(context.Background(), cfg, dir); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Error("the feed directory was made for a configuration refused")
			}
		})
	}
}

// TestFetchSwitchesEPSSFormat: moving from the .csv URL to the .csv.gz one
// leaves one EPSS file, so LoadDir cannot pick a stale one.
func TestFetchSwitchesEPSSFormat(t *testing.T) {
	fs := newFeedServer(t)
	fs.serve("/epss_scores-current.csv", []byte(readTestdata(t, "epss_scores-current.csv")))
	dir := t.TempDir()
	for _, path := range []string{"/epss_scores-current.csv", epssPath} {
		if _, err := Fetch(context.Background(), FetchConfig{EPSS: fs.srv.URL + path}, dir); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for name := range mtimes(t, dir) {
		names = append(names, name)
	}
	if diff := cmp.Diff([]string{EPSSFile, EPSSFile + sidecarSuffix}, names, cmpSorted); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

// TestFetchRemovesWhatACrashLeft: a temporary file from a fetch that died
// half way does not stay for ever.
func TestFetchRemovesWhatACrashLeft(t *testing.T) {
	fs := newFeedServer(t)
	dir := t.TempDir()
	writeFile(t, dir, "."+EPSSFile+".tmp-123456", "half a download")
	if _, err := Fetch(context.Background(), FetchConfig{EPSS: fs.srv.URL + epssPath}, dir); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range mtimes(t, dir) {
		names = append(names, name)
	}
	if diff := cmp.Diff([]string{EPSSFile, EPSSFile + sidecarSuffix}, names, cmpSorted); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

// TestFetchStopsWhenCancelled: a cancelled fetch writes nothing.
func TestFetchStopsWhenCancelled(t *testing.T) {
	fs := newFeedServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	rep, err := Fetch(ctx, fs.config(), dir)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want one wrapping context.Canceled", err)
	}
	if diff := cmp.Diff(allOutcomes(OutcomeError), outcomes(rep)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if files := mtimes(t, dir); len(files) != 0 {
		t.Errorf("files written by a cancelled fetch: %v", files)
	}
}
