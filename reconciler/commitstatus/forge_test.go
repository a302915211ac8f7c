package commitstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
)

// discard is the tests' logger.
var discard = slog.New(slog.DiscardHandler)

// testToken is the token every test forge expects.
const testToken = "forge-test-token-7f3a"

// The revisions the tests post statuses on.
var (
	revA = strings.Repeat("a1", 20)
	revB = strings.Repeat("b2", 20)
	revC = strings.Repeat("c3", 20)
	revD = strings.Repeat("d4", 20)
	revE = strings.Repeat("e5", 20)
)

// shape is a provider's documented commit status request: the path under
// its API, the authentication header, and the JSON body's fields and
// states.
type shape struct {
	base string
	// path matches the request URI below base; its last group is the
	// commit.
	path *regexp.Regexp
	// repo is the repository part of the path the test's Config gives.
	repo       string
	authHeader string
	authValue  string
	// accept is the Accept header the provider documents; "" for any.
	accept string
	// contextField names the status among others (GitLab: name).
	contextField string
	fields       []string
	states       []string
}

var shapes = map[Provider]shape{
	// POST /repos/{owner}/{repo}/statuses/{sha}; GitHub Enterprise
	// Server's API lives under /api/v3.
	GitHub: {
		base: "/api/v3", path: regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$`), repo: "msp/fleet",
		authHeader: "Authorization", authValue: "Bearer " + testToken, accept: "application/vnd.github+json",
		contextField: "context", fields: []string{"state", "target_url", "description", "context"},
		states: []string{"error", "failure", "pending", "success"},
	},
	// POST /projects/{id}/statuses/{sha}, id the project's path
	// URL-encoded whole.
	GitLab: {
		base: "/api/v4", path: regexp.MustCompile(`^/projects/(msp%2Finfra%2Ffleet)/statuses/([0-9a-f]{40})$`), repo: "msp/infra/fleet",
		authHeader: "PRIVATE-TOKEN", authValue: testToken,
		contextField: "name", fields: []string{"state", "ref", "name", "context", "target_url", "description", "coverage", "pipeline_id"},
		states: []string{"pending", "running", "success", "failed", "canceled", "skipped"},
	},
	// POST /repos/{owner}/{repo}/statuses/{sha} under /api/v1.
	Gitea: {
		base: "/api/v1", path: regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$`), repo: "msp/fleet",
		authHeader: "Authorization", authValue: "token " + testToken,
		contextField: "context", fields: []string{"state", "target_url", "description", "context"},
		states: []string{"pending", "success", "error", "failure", "warning"},
	},
}

// received is a status request the forge accepted.
type received struct {
	// at is the test clock's time when it arrived.
	at       time.Time
	revision string
	context  string
	state    string
	desc     string
	// text is the request as the golden files show it.
	text string
}

// forge is a provider's commit status API on loopback: it checks each
// request against the provider's documented shape (a request that does
// not match fails the test and gets 422, as a forge answers), and
// answers as answer says (201 when it is nil).
type forge struct {
	t        *testing.T
	provider Provider
	clk      *clock.Fake
	srv      *httptest.Server

	mu sync.Mutex // guards answer and got
	// answer, when not nil, gives the answer to a well-formed request.
	answer func(n int) (code int, header http.Header, body string)
	// requests counts the well-formed requests, answered or not.
	requests int
	got      []received
}

func newForge(t *testing.T, p Provider, clk *clock.Fake) *forge {
	f := &forge{t: t, provider: p, clk: clk}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// config is the notifier configuration that posts to f.
func (f *forge) config() Config {
	return Config{Provider: f.provider, API: f.srv.URL + shapes[f.provider].base + "/", Repo: shapes[f.provider].repo, Token: testToken}
}

func (f *forge) serve(w http.ResponseWriter, r *http.Request) {
	sh := shapes[f.provider]
	fail := func(format string, args ...any) {
		f.t.Errorf("%s: %s %s: %s", f.provider, r.Method, r.RequestURI, fmt.Sprintf(format, args...))
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"message": "Validation Failed"}`)
	}
	if r.Method != http.MethodPost {
		fail("want POST")
		return
	}
	m := sh.path.FindStringSubmatch(strings.TrimPrefix(r.RequestURI, sh.base))
	if !strings.HasPrefix(r.RequestURI, sh.base+"/") || m == nil {
		fail("not the documented path %s%s", sh.base, sh.path)
		return
	}
	if got := r.Header.Get(sh.authHeader); got != sh.authValue {
		fail("%s header %q, want %q", sh.authHeader, got, sh.authValue)
		return
	}
	if f.provider == GitLab && r.Header.Get("Authorization") != "" {
		fail("GitLab takes the token in PRIVATE-TOKEN only")
		return
	}
	if sh.accept != "" && r.Header.Get("Accept") != sh.accept {
		fail("Accept %q, want %q", r.Header.Get("Accept"), sh.accept)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		fail("Content-Type %q, want application/json", ct)
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		fail("read body: %v", err)
		return
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		fail("body is not a JSON object: %v", err)
		return
	}
	for k := range body {
		if !slices.Contains(sh.fields, k) {
			fail("field %q is not in the documented request", k)
			return
		}
	}
	state, _ := body["state"].(string)
	ctx, _ := body[sh.contextField].(string)
	desc, _ := body["description"].(string)
	switch {
	case !slices.Contains(sh.states, state):
		fail("state %q, want one of %q", state, sh.states)
		return
	case ctx == "":
		fail("no %s", sh.contextField)
		return
	case utf8.RuneCountInString(desc) > 140 || !utf8.ValidString(desc):
		fail("description of %d characters (at most 140 of valid UTF-8)", utf8.RuneCountInString(desc))
		return
	}

	f.mu.Lock()
	f.requests++
	n, answer := f.requests, f.answer
	f.mu.Unlock()
	code, header, reply := http.StatusCreated, http.Header{}, `{"id": 1}`
	if answer != nil {
		code, header, reply = answer(n)
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(code)
	io.WriteString(w, reply)
	if code != http.StatusCreated {
		return
	}
	var text bytes.Buffer
	fmt.Fprintf(&text, "%s %s\n%s: %s\n%s\n", r.Method, r.RequestURI, sh.authHeader, r.Header.Get(sh.authHeader), raw)
	f.mu.Lock()
	f.got = append(f.got, received{at: f.clk.Now(), revision: m[len(m)-1], context: ctx, state: state, desc: desc, text: text.String()})
	f.mu.Unlock()
}

// setAnswer sets how the forge answers from now on (nil: 201).
func (f *forge) setAnswer(a func(n int) (int, http.Header, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

// accepted returns the statuses the forge accepted so far.
func (f *forge) accepted() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *forge) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// startNotifier runs a notifier of cfg on clk until the test ends, and
// returns it with the registry of its counters.
func startNotifier(t *testing.T, cfg Config, clk *clock.Fake) (*Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	n, err := New(cfg, Options{Clock: clk, Logger: discard, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n, reg
}

// drive moves clk to the next moment the notifier waits for, again and
// again, until ok holds: the notifier runs as if time passed, and no test
// sleeps for it. The deadline detects a hang; it is not a timing
// assertion.
func drive(t *testing.T, clk *clock.Fake, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if t.Failed() {
			// The forge refused a request's shape: no use waiting.
			t.FailNow()
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		if next, waiting := clk.Next(); waiting {
			clk.Advance(next.Sub(clk.Now()))
			continue
		}
		time.Sleep(time.Millisecond)
	}
}

// counter is the value of the counter name with labels in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s%v", name, labels)
	return 0
}
