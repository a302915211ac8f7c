package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/protocol"
)

const (
	testClient = "acme"
	testSecret = "enroll-secret"
)

// t0 is the fake clock's start: a Tuesday evening maintenance window.
var t0 = time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)

// fakeController implements just enough of the agent API, over real HTTP on
// loopback, with a real ed25519 job-signing key.
type fakeController struct {
	t    *testing.T
	srv  *httptest.Server
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	// jobs feeds the long-poll; a poll holds until a job arrives or the
	// agent goes away, like the real controller's long-poll.
	jobs chan protocol.SignedJob
	// changed is signalled whenever a request arrives or is answered.
	changed chan struct{}

	mu sync.Mutex // guards everything below
	// requests is "METHOD path" of every request, in arrival order.
	requests []string
	// fail maps "METHOD path" to statuses answered, in order, before the
	// route works; retryAfter is sent with them when set.
	fail       map[string][]int
	retryAfter string
	// lostAcks answers this many result posts with 503 after recording
	// them: the acknowledgement is lost on the way back.
	lostAcks   int
	enrolls    int
	endpoints  map[string]string // instance id → endpoint id
	nodeKeys   map[string]string // endpoint id → node key
	reports    []protocol.Report
	resultPost []protocol.ResultRequest
	results    map[string]protocol.ResultRequest // first copy, by job id
	// onRequest runs as a request arrives, before any injected failure.
	onRequest func(*http.Request)
	// lostEnrollAnswer enrolls the agent and then answers 503, once.
	lostEnrollAnswer bool
	// emptyPolls answers job polls at once with no jobs, like a proxy that
	// cuts long-polls short.
	emptyPolls bool
	// predatesReboot answers reports and results that carry reboot state
	// or script results the way a controller older than them does: 400
	// for a field it does not know.
	predatesReboot bool
	// before answers results the way a controller older than the unknown
	// outcome does: 400 for a result it does not know, or a field it does
	// not know.
	before bool
}

func newFakeController(t *testing.T) *fakeController {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeController{
		t: t, priv: priv, pub: pub,
		jobs:      make(chan protocol.SignedJob, 16),
		changed:   make(chan struct{}, 1),
		fail:      map[string][]int{},
		endpoints: map[string]string{},
		nodeKeys:  map[string]string{},
		results:   map[string]protocol.ResultRequest{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathEnroll, fc.enroll)
	mux.HandleFunc("POST "+protocol.PathReport, fc.authed(fc.report))
	mux.HandleFunc("GET "+protocol.PathJobs, fc.authed(fc.poll))
	mux.HandleFunc("POST "+protocol.PathResult, fc.authed(fc.result))
	fc.srv = httptest.NewServer(fc.intercept(mux))
	t.Cleanup(fc.srv.Close)
	return fc
}

func (fc *fakeController) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		fc.mu.Lock()
		fc.requests = append(fc.requests, key)
		var status int
		if q := fc.fail[key]; len(q) > 0 {
			status, fc.fail[key] = q[0], q[1:]
		}
		ra := fc.retryAfter
		hook := fc.onRequest
		empty := fc.emptyPolls && key == "GET "+protocol.PathJobs
		fc.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		fc.notify()
		defer fc.notify()
		if status != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			writeErr(w, protocol.CodeForStatus(status), fmt.Sprintf("injected %d", status))
			return
		}
		if empty {
			writeJSONResp(w, protocol.JobsResponse{})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (fc *fakeController) notify() {
	select {
	case fc.changed <- struct{}{}:
	default:
	}
}

func writeErr(w http.ResponseWriter, c protocol.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(c.Status())
	_ = json.NewEncoder(w).Encode(protocol.ErrorBody{Error: &protocol.Error{Code: c, Message: msg}})
}

func writeJSONResp(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (fc *fakeController) enroll(w http.ResponseWriter, r *http.Request) {
	var req protocol.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeErr(w, protocol.CodeInvalid, err.Error())
		return
	}
	if req.Secret != testSecret || req.Client != testClient {
		writeErr(w, protocol.CodeUnauthorized, "bad enrollment secret")
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.enrolls++
	ep, ok := fc.endpoints[req.InstanceID]
	if ok && fc.nodeKeys[ep] != req.NodeKey {
		writeErr(w, protocol.CodeConflict, "instance enrolled with another node key")
		return
	}
	if !ok {
		ep = fmt.Sprintf("ep-%d", len(fc.endpoints)+1)
		fc.endpoints[req.InstanceID] = ep
		fc.nodeKeys[ep] = req.NodeKey
	}
	if fc.lostEnrollAnswer {
		fc.lostEnrollAnswer = false
		writeErr(w, protocol.CodeUnavailable, "answer lost")
		return
	}
	writeJSONResp(w, protocol.EnrollResponse{Endpoint: ep, SigningKey: fc.pub})
}

func (fc *fakeController) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ep := r.Header.Get(protocol.HeaderEndpoint)
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		fc.mu.Lock()
		want, known := fc.nodeKeys[ep]
		fc.mu.Unlock()
		if !ok || !known || key != want {
			writeErr(w, protocol.CodeUnauthorized, "bad node key")
			return
		}
		h(w, r)
	}
}

func (fc *fakeController) report(w http.ResponseWriter, r *http.Request) {
	var rep protocol.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeErr(w, protocol.CodeInvalid, err.Error())
		return
	}
	fc.mu.Lock()
	if fc.predatesReboot && rep.Reboot != nil {
		fc.mu.Unlock()
		writeErr(w, protocol.CodeInvalid, `malformed JSON: json: unknown field "reboot"`)
		return
	}
	fc.reports = append(fc.reports, rep)
	fc.mu.Unlock()
	writeJSONResp(w, protocol.ReportResponse{Updates: len(rep.Updates)})
}

func (fc *fakeController) poll(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("wait") == "" {
		writeErr(w, protocol.CodeInvalid, "no wait")
		return
	}
	select {
	case j := <-fc.jobs:
		writeJSONResp(w, protocol.JobsResponse{Jobs: []protocol.SignedJob{j}})
	case <-r.Context().Done():
	}
}

func (fc *fakeController) result(w http.ResponseWriter, r *http.Request) {
	var res protocol.ResultRequest
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		writeErr(w, protocol.CodeInvalid, err.Error())
		return
	}
	if res.Job != r.PathValue("id") {
		writeErr(w, protocol.CodeInvalid, "job id in path and body differ")
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.predatesReboot && (res.Reboot != nil || res.Hooks != nil) {
		writeErr(w, protocol.CodeInvalid, `malformed JSON: json: unknown field "reboot"`)
		return
	}
	fc.resultPost = append(fc.resultPost, res)
	if fc.before && (res.InventorySeq != 0 || slices.ContainsFunc(res.Updates, func(u protocol.UpdateResult) bool { return u.Result == protocol.ResultUnknown })) {
		writeErr(w, protocol.CodeInvalid, "updates[0].result: unknown result \"unknown\" (want succeeded, failed or refused)")
		return
	}
	_, dup := fc.results[res.Job]
	if !dup {
		fc.results[res.Job] = res
	}
	if fc.lostAcks > 0 {
		fc.lostAcks--
		writeErr(w, protocol.CodeUnavailable, "acknowledgement lost")
		return
	}
	writeJSONResp(w, protocol.ResultResponse{Duplicate: dup})
}

// sign signs p with the controller's key.
func (fc *fakeController) sign(p protocol.JobPayload) protocol.SignedJob {
	fc.t.Helper()
	sj, err := protocol.SignJob(fc.priv, p)
	if err != nil {
		fc.t.Fatal(err)
	}
	return sj
}

func (fc *fakeController) failNext(route string, statuses ...int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.fail[route] = append(fc.fail[route], statuses...)
}

func (fc *fakeController) snapshot() (requests []string, reports []protocol.Report, posts []protocol.ResultRequest, results map[string]protocol.ResultRequest) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	results = map[string]protocol.ResultRequest{}
	for k, v := range fc.results {
		results[k] = v
	}
	return append([]string(nil), fc.requests...), append([]protocol.Report(nil), fc.reports...),
		append([]protocol.ResultRequest(nil), fc.resultPost...), results
}

// fakeBackend installs nothing; it counts installs per update.
type fakeBackend struct {
	mu            sync.Mutex
	installs      map[string]int
	inventory     []*protocol.Update
	rebootPending bool
	failing       map[string]string // update id → install error
	// during runs inside Install, for tests that act mid-install.
	during func()
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		installs: map[string]int{},
		inventory: []*protocol.Update{
			{ID: "openssl@3.0.15-1", Source: "apt", Name: "openssl", Version: "3.0.15-1", Category: "security"},
		},
		failing: map[string]string{},
	}
}

func (b *fakeBackend) Inventory(context.Context) ([]*protocol.Update, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inventory, nil
}

func (b *fakeBackend) Install(_ context.Context, ups []*protocol.Update) ([]backend.Result, error) {
	b.mu.Lock()
	during := b.during
	b.mu.Unlock()
	if during != nil {
		during()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backend.Result
	for _, u := range ups {
		b.installs[u.ID]++
		if msg, bad := b.failing[u.ID]; bad {
			out = append(out, backend.Result{Update: u.ID, Error: msg, Output: "E: " + msg})
			continue
		}
		out = append(out, backend.Result{Update: u.ID, Succeeded: true, Output: "Setting up " + u.Name})
	}
	return out, nil
}

func (b *fakeBackend) RebootPending(context.Context) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rebootPending, nil
}

func (b *fakeBackend) installCount(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.installs[id]
}

// fakeClock never sleeps: Sleep moves time forward and returns.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	// onSleep, when set, runs at each Sleep before time moves.
	onSleep func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	c.advance(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is a Runner that records commands instead of running them.
type recorder struct {
	mu   sync.Mutex
	runs [][]string
}

func (r *recorder) run(_ context.Context, argv []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, append([]string(nil), argv...))
	return nil
}

func (r *recorder) commands() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.runs...)
}

// syncBuffer is a log sink safe for the agent goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// harness is one agent's world: its controller, backend, clock, state dir.
type harness struct {
	fc     *fakeController
	be     *fakeBackend
	clock  *fakeClock
	reboot *recorder
	// people records the notices and prompts shown to the endpoint's
	// users and answers the prompts.
	people *people
	logs   *syncBuffer
	dir    string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clock := &fakeClock{now: t0}
	return &harness{
		people: &people{clock: clock},
		fc:     newFakeController(t),
		be:     newFakeBackend(),
		clock:  clock,
		reboot: &recorder{},
		logs:   &syncBuffer{},
		dir:    t.TempDir(),
	}
}

func (h *harness) config() Config {
	return Config{
		Controller:    h.fc.srv.URL,
		Client:        testClient,
		EnrollSecret:  testSecret,
		StateDir:      h.dir,
		Hostname:      "acme-ws-01",
		OS:            protocol.OS{Family: "linux", Version: "debian 12"},
		Labels:        map[string]string{"ring": "canary"},
		Backend:       h.be,
		RebootCommand: []string{"shutdown", "-r", "+1"},
		RetryMax:      2,
		RetryWaitMin:  time.Millisecond,
		RetryWaitMax:  2 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:         h.clock,
		Runner:        h.reboot.run,
		Notifier:      h.people,
	}
}

// agent builds an Agent over the harness's state dir, as a fresh process
// would after a restart.
func (h *harness) agent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(h.config())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// enrolled builds an Agent and enrolls it.
func (h *harness) enrolled(t *testing.T) *Agent {
	t.Helper()
	a := h.agent(t)
	if err := a.enrollRetrying(t.Context()); err != nil {
		t.Fatal(err)
	}
	return a
}

// job is a valid job payload for endpoint ep, due before the window ends.
func job(ep, id string, seq int64, updates ...string) protocol.JobPayload {
	p := protocol.JobPayload{
		ID: id, Endpoint: ep, Seq: seq,
		NotAfter:       t0.Add(2 * time.Hour),
		Reboot:         protocol.RebootNever,
		Revision:       "4f1c2e9",
		IdempotencyKey: "key-" + id,
	}
	for _, u := range updates {
		name, version, _ := strings.Cut(u, "@")
		p.Updates = append(p.Updates, protocol.JobUpdate{ID: u, Source: "apt", Name: name, Version: version})
	}
	return p
}

// runAgent runs a.Run until done returns true, checking whenever the
// controller sees or answers a request, then cancels it and waits.
func runAgent(t *testing.T, a *Agent, fc *fakeController, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	finished := make(chan error, 1)
	go func() { finished <- a.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	for !done() {
		select {
		case err := <-finished:
			cancel()
			t.Fatalf("Run returned early: %v", err)
		case <-deadline:
			cancel()
			<-finished
			t.Fatal("agent did not reach the expected state in 10s")
		case <-fc.changed:
		}
	}
	cancel()
	if err := <-finished; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
