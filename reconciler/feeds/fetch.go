package feeds

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/patchline/patchline/internal/clock"
)

// The publishers' own addresses for the feeds.
const (
	DefaultKEVURL    = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
	DefaultEPSSURL   = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
	DefaultDebianURL = "https://security-tracker.debian.org/tracker/data/json"
	// DefaultNVDBaseURL is where NVD keeps its CVE JSON 2.0 feed files.
	DefaultNVDBaseURL = "https://nvd.nist.gov/feeds/json/cve/2.0/"
)

// Defaults for the FetchConfig fields left zero.
const (
	DefaultRetryWaitMin = time.Second
	DefaultRetryWaitMax = 30 * time.Second
	DefaultTimeout      = 30 * time.Minute
	DefaultUserAgent    = "patchline-feeds"
)

// maxDownload bounds one downloaded file, so a broken or hostile server
// cannot fill the disk. The largest real feed file is well under 1 GiB.
const maxDownload = 4 << 30

// FetchConfig says which feed files Fetch downloads and how. A feed whose
// URL is empty is not fetched.
type FetchConfig struct {
	KEV    string // CISA's KEV JSON, saved as known_exploited_vulnerabilities.json
	EPSS   string // FIRST's current EPSS CSV, saved as epss_scores-current.csv.gz (.csv if the URL's path does not end in .gz)
	Debian string // the Debian tracker's JSON, saved as debian-security-tracker.json
	// NVD lists NVD CVE JSON 2.0 feed files, each saved under the last
	// element of its URL's path, which must be an NVD feed file name
	// (nvdcve-2.0-2025.json.gz, nvdcve-2.0-modified.json.gz, ...).
	NVD []string

	// Retries is how many times a download is tried again after a
	// connection error, a 5xx or a 429; 0 means never. The wait doubles
	// from RetryWaitMin to at most RetryWaitMax, a Retry-After header
	// included (zero: DefaultRetryWaitMin, DefaultRetryWaitMax).
	Retries      int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	// Timeout bounds one attempt, the body included (zero: DefaultTimeout).
	Timeout time.Duration
	// UserAgent is sent with every request (empty: DefaultUserAgent).
	UserAgent string
	// Clock stamps the results (nil: the system clock).
	Clock clock.Clock
}

// NVDFeedURLs lists NVD's yearly CVE JSON 2.0 feeds from firstYear to
// lastYear (NVD's 2002 file also holds 1999 to 2001), then the modified
// feed, which NVD regenerates every two hours with the CVEs changed in the
// last eight days and which, by each record's lastModified, updates the
// yearly ones between their daily regenerations.
func NVDFeedURLs(firstYear, lastYear int) []string {
	var urls []string
	for y := firstYear; y <= lastYear; y++ {
		urls = append(urls, DefaultNVDBaseURL+"nvdcve-2.0-"+strconv.Itoa(y)+".json.gz")
	}
	return append(urls, DefaultNVDBaseURL+"nvdcve-2.0-modified.json.gz")
}

// DefaultFetchConfig fetches every feed from its publisher, NVD's from
// 2002 to year, with 4 retries and the default waits and timeout.
func DefaultFetchConfig(year int) FetchConfig {
	return FetchConfig{
		KEV:     DefaultKEVURL,
		EPSS:    DefaultEPSSURL,
		Debian:  DefaultDebianURL,
		NVD:     NVDFeedURLs(2002, year),
		Retries: 4,
	}
}

// MirrorFetchConfig fetches every feed file from a mirror that serves the
// publishers' files under their own names at base (an MSP's internal
// mirror, or a directory served over HTTP): base + "known_exploited_vulnerabilities.json",
// and so on, NVD's from 2002 to year.
func MirrorFetchConfig(base string, year int) FetchConfig {
	base = strings.TrimRight(base, "/") + "/"
	cfg := DefaultFetchConfig(year)
	cfg.KEV, cfg.EPSS, cfg.Debian = base+KEVFile, base+EPSSFile, base+DebianFile
	for i, u := range cfg.NVD {
		cfg.NVD[i] = base + path.Base(u)
	}
	return cfg
}

// Outcome is what became of one feed file in a Fetch.
type Outcome string

// The outcomes of a fetch.
const (
	OutcomeOK        Outcome = "ok"        // a new copy was downloaded, validated and put in place
	OutcomeUnchanged Outcome = "unchanged" // the publisher answered 304 Not Modified
	OutcomeError     Outcome = "error"     // the old copy, if any, stays; Err says why
)

// FileResult is the outcome of one feed file.
type FileResult struct {
	Feed    Feed
	File    string // its name in the feed directory
	URL     string
	Outcome Outcome
	Err     error
	At      time.Time // when the outcome was known
}

// FeedResult sums up a feed's files.
type FeedResult struct {
	Feed Feed
	// Outcome is OutcomeError if any file failed, else OutcomeOK if any
	// file changed, else OutcomeUnchanged.
	Outcome Outcome
	At      time.Time // when its last file was done
	Errors  int       // how many of its files failed
}

// Report is what a Fetch did, file by file.
type Report struct {
	Files []FileResult
}

// Feeds sums up the report per feed, for metrics: a feed whose Outcome
// is not OutcomeError succeeded at At
// (patchline_feed_last_success_timestamp_seconds{feed}), and Errors adds
// to patchline_feed_errors_total{feed}. Feeds not fetched are left out.
func (r Report) Feeds() []FeedResult {
	var out []FeedResult
	for _, feed := range All {
		sum := FeedResult{Feed: feed, Outcome: OutcomeUnchanged}
		n := 0
		for _, f := range r.Files {
			if f.Feed != feed {
				continue
			}
			n++
			if f.At.After(sum.At) {
				sum.At = f.At
			}
			switch f.Outcome {
			case OutcomeError:
				sum.Errors++
				sum.Outcome = OutcomeError
			case OutcomeOK:
				if sum.Outcome != OutcomeError {
					sum.Outcome = OutcomeOK
				}
			}
		}
		if n > 0 {
			out = append(out, sum)
		}
	}
	return out
}

// download is one file to fetch.
type download struct {
	feed      Feed
	url, name string
}

// Fetch downloads the configured feed files into dir, one after another,
// and reports what became of each. A file is requested conditionally
// (If-None-Match, If-Modified-Since, from the validators of its last
// download kept in <name>.fetch.json); a 304 leaves it as it is. A new
// copy is written to a temporary file in dir, synced, validated with the
// same parser LoadDir uses, and only then renamed over the old one, so the
// directory always holds the last good copy of each file. A download cut
// short is not retried within the call: the next Fetch tries again.
//
// The error joins the errors of the files that failed; the report is
// complete either way. Only one Fetch may run on a directory at a time.
func Fetch(ctx context.Context, cfg FetchConfig, dir string) (Report, error) {
	downloads, err := cfg.downloads()
	if err != nil {
		return Report{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Report{}, fmt.Errorf("feeds: %w", err)
	}
	if err := removeStaleTemps(dir); err != nil {
		return Report{}, fmt.Errorf("feeds: %w", err)
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	client := cfg.client()
	var (
		rep  Report
		errs []error
	)
	for _, d := range downloads {
		outcome, err := fetchOne(ctx, client, cfg.userAgent(), dir, d)
		if err != nil {
			err = fmt.Errorf("feeds: %s from %s: %w", d.name, d.url, err)
			errs = append(errs, err)
		}
		rep.Files = append(rep.Files, FileResult{Feed: d.feed, File: d.name, URL: d.url, Outcome: outcome, Err: err, At: clk.Now()})
	}
	return rep, errors.Join(errs...)
}

// downloads lists the files cfg asks for, refusing URLs Fetch could not
// name a file after.
func (cfg FetchConfig) downloads() ([]download, error) {
	var out []download
	add := func(feed Feed, raw, name string) error {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("feeds: %s URL: %w", feed, err)
		}
		if u.Scheme != "https" && u.Scheme != "http" {
			return fmt.Errorf("feeds: %s URL %q: scheme must be https or http", feed, raw)
		}
		if name == "" {
			name = path.Base(u.Path)
		}
		out = append(out, download{feed: feed, url: raw, name: name})
		return nil
	}
	if cfg.KEV != "" {
		if err := add(FeedKEV, cfg.KEV, KEVFile); err != nil {
			return nil, err
		}
	}
	if cfg.EPSS != "" {
		name := EPSSFile
		if u, err := url.Parse(cfg.EPSS); err == nil && !strings.HasSuffix(u.Path, ".gz") {
			name = strings.TrimSuffix(EPSSFile, ".gz")
		}
		if err := add(FeedEPSS, cfg.EPSS, name); err != nil {
			return nil, err
		}
	}
	for _, raw := range cfg.NVD {
		if err := add(FeedNVD, raw, ""); err != nil {
			return nil, err
		}
		if name := out[len(out)-1].name; !nvdName.MatchString(name) {
			return nil, fmt.Errorf("feeds: NVD URL %q: %q is not an NVD feed file name (nvdcve-2.0-*.json or .json.gz)", raw, name)
		}
	}
	if cfg.Debian != "" {
		if err := add(FeedDebian, cfg.Debian, DebianFile); err != nil {
			return nil, err
		}
	}
	seen := make(map[string]bool)
	for _, d := range out {
		if seen[d.name] {
			return nil, fmt.Errorf("feeds: two URLs would both be saved as %s", d.name)
		}
		seen[d.name] = true
	}
	return out, nil
}

func (cfg FetchConfig) userAgent() string {
	if cfg.UserAgent == "" {
		return DefaultUserAgent
	}
	return cfg.UserAgent
}

// client builds the retrying HTTP client: pooled connections, TLS 1.2 or
// later, a bound on each attempt, and a bounded backoff.
func (cfg FetchConfig) client() *retryablehttp.Client {
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = cmp0(cfg.Timeout, DefaultTimeout)
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	waitMax := cmp0(cfg.RetryWaitMax, DefaultRetryWaitMax)
	return &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: cmp0(cfg.RetryWaitMin, DefaultRetryWaitMin),
		RetryWaitMax: waitMax,
		RetryMax:     max(cfg.Retries, 0),
		// Cancellation ends the retries; 5xx (but 501), 429 and
		// connection errors are retried, every other answer is final.
		CheckRetry: retryablehttp.ErrorPropagatedRetryPolicy,
		// retryablehttp honours Retry-After without a bound; a publisher
		// asking for an hour must not park the fetch for that long.
		Backoff: func(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
			return min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), waitMax)
		},
	}
}

func cmp0(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// fetchOne downloads one file into dir.
func fetchOne(ctx context.Context, client *retryablehttp.Client, userAgent, dir string, d download) (Outcome, error) {
	target := filepath.Join(dir, d.name)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return OutcomeError, err
	}
	req.Header.Set("User-Agent", userAgent)
	conditional := false
	if side, ok := readSidecar(dir, d.name); ok && side.URL == d.url {
		// Validators only count while the file they describe is there.
		if _, err := os.Stat(target); err == nil {
			if side.ETag != "" {
				req.Header.Set("If-None-Match", side.ETag)
				conditional = true
			}
			if side.LastModified != "" {
				req.Header.Set("If-Modified-Since", side.LastModified)
				conditional = true
			}
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return OutcomeError, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		return OutcomeUnchanged, nil
	case resp.StatusCode != http.StatusOK:
		return OutcomeError, fmt.Errorf("HTTP %s", resp.Status)
	}
	if err := replace(ctx, dir, d, resp); err != nil {
		return OutcomeError, err
	}
	side := sidecar{URL: d.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if err := writeSidecar(dir, d.name, side); err != nil {
		return OutcomeError, err
	}
	if d.feed == FeedEPSS {
		// Only one EPSS file may stay: the other name would be an older
		// copy LoadDir could pick by its modification time.
		other := strings.TrimSuffix(d.name, ".gz")
		if other == d.name {
			other += ".gz"
		}
		for _, n := range []string{other, other + sidecarSuffix} {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return OutcomeError, err
			}
		}
	}
	return OutcomeOK, nil
}
