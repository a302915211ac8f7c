package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema"
)

// Credentials of testdata/secrets.json.
const (
	adminToken    = "admin-token-for-tests-only"
	webhookSecret = "webhook-secret-for-tests-only"
	acmeSecret    = "acme-enrollment-secret"
	globexSecret  = "globex-enrollment-secret"
)

// t0 is the test clock's start.
var t0 = time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC)

// clock is a settable clock; tests move it instead of sleeping.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// recorder is an Events that remembers the calls.
type recorder struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) Enrolled(_ context.Context, client, endpoint string) {
	r.add("enrolled %s %s", client, endpoint)
}

func (r *recorder) Reported(_ context.Context, client, endpoint string) {
	r.add("reported %s %s", client, endpoint)
}

func (r *recorder) ResultRecorded(_ context.Context, client, endpoint, job, ring string, results []store.UpdateResult) {
	var rs []string
	for _, res := range results {
		rs = append(rs, res.Update+"="+string(res.Result))
	}
	r.add("result %s %s %s %s %s", client, endpoint, job, ring, strings.Join(rs, ","))
}

func (r *recorder) GitHook(context.Context) { r.add("git hook") }

func (r *recorder) Removed(_ context.Context, client, endpoint string) {
	r.add("removed %s %s", client, endpoint)
}

// testStatus is the status document of test servers: the whole fleet and
// two clients, each with a revision and figures, and a refusal for
// globex.
func testStatus() *protocol.Status {
	return &protocol.Status{
		Head:        "c0ffee",
		SourceError: "fetch https://git.example/msp/fleet.git: connection refused",
		Refused:     &protocol.Refusal{Revision: "bad", Client: "globex", Problems: []string{"clients/globex/policy.cue:1:1: oops"}, At: t0},
		Revisions: []protocol.RevisionStatus{
			{Client: "", Applied: "c0ffee", Attempted: "c0ffee", AttemptStatus: "applied"},
			{Client: "acme", Applied: "c0ffee", Attempted: "c0ffee", AttemptStatus: "applied"},
			{Client: "globex", Applied: "c0ffee", Attempted: "bad", AttemptStatus: "refused"},
		},
		Clients: []protocol.ClientStatus{
			{Client: "acme", Revision: "c0ffee", Known: true, Endpoints: 2, Compliant: 1, Drifting: 1, PlannedAt: t0},
			{Client: "globex", Revision: "c0ffee", Known: true, Endpoints: 1, Compliant: 1, PlannedAt: t0},
		},
	}
}

// take returns the calls so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// env is a controller API on loopback over a real SQLite store.
type env struct {
	t      testing.TB
	db     *sqlite.DB
	dbPath string
	api    *Server
	srv    *httptest.Server
	events *recorder
	reg    *prometheus.Registry
	clock  *clock
	key    ed25519.PrivateKey
}

// newEnv starts a server; configure may change its Config before New.
func newEnv(t testing.TB, configure ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "patchd.db")
	db, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, dbPath: dbPath, events: &recorder{}, reg: prometheus.NewRegistry(), clock: &clock{now: t0}, key: priv}
	cfg := Config{
		Store:      db,
		Secrets:    loadTestSecrets(t),
		SigningKey: pub,
		Events:     e.events,
		Status: func(context.Context) (*protocol.Status, error) {
			return testStatus(), nil
		},
		Registerer: e.reg,
		Now:        e.clock.Now,
		Logger:     discardLogger(),
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.api, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = e.serve()
	return e
}

// serve starts a server of the API with its limits, which the test may
// have changed before; it stops when the test ends.
func (e *env) serve() *httptest.Server {
	e.t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = e.api.HTTPServer()
	srv.Start()
	e.t.Cleanup(srv.Close)
	return srv
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (Linux routes all of 127.0.0.0/8 to loopback), so the
// server sees a distinct source address; it is closed when the test ends.
func (e *env) clientFrom(ip string) *http.Client {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// postFrom sends v as post does, with hc, to srv.
func (e *env) postFrom(hc *http.Client, srv *httptest.Server, path string, v any, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(jsonBytes(e.t, v)))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// loadTestSecrets loads testdata/secrets.json from a private copy (a
// checkout may leave it readable by others, which LoadSecrets refuses).
func loadTestSecrets(t testing.TB) *Secrets {
	t.Helper()
	data, err := os.ReadFile("testdata/secrets.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSecrets(writeFile(t, data, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t testing.TB, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask; tests need it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorBody decodes the error envelope of an answer.
func (r response) errorBody(t testing.TB) *protocol.Error {
	t.Helper()
	var eb protocol.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("answer %d is not an error envelope: %s", r.status, r.body)
	}
	return eb.Error
}

// request sends a request; header pairs are name, value.
func (e *env) request(ctx context.Context, method, path string, body io.Reader, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// post sends v as JSON (or as is, when it is a string or []byte).
func (e *env) post(path string, v any, header ...string) response {
	e.t.Helper()
	return e.request(context.Background(), http.MethodPost, path, bytes.NewReader(jsonBytes(e.t, v)), header...)
}

func jsonBytes(t testing.TB, v any) []byte {
	t.Helper()
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agent is an enrolled endpoint's credentials.
type agent struct {
	endpoint, nodeKey string
}

// auth is the agent's authentication headers.
func (a agent) auth() []string {
	return []string{"Authorization", "Bearer " + a.nodeKey, protocol.HeaderEndpoint, a.endpoint}
}

// enrollRequest is a valid enrollment of hostname into client.
func enrollRequest(client, secret, hostname string) protocol.EnrollRequest {
	return protocol.EnrollRequest{
		Client: client, Secret: secret, Hostname: hostname,
		InstanceID: "instance-" + strings.ToLower(hostname),
		NodeKey:    "node-key-of-" + strings.ToLower(hostname) + "-0123456789abcdefghijklmnop",
		OS:         protocol.OS{Family: "windows", Version: "11 24H2"},
	}
}

// enroll enrolls hostname into acme and returns its credentials.
func (e *env) enroll(hostname string) agent {
	e.t.Helper()
	req := enrollRequest("acme", acmeSecret, hostname)
	resp := e.post(protocol.PathEnroll, req)
	if resp.status != http.StatusOK {
		e.t.Fatalf("enroll %s: %d %s", hostname, resp.status, resp.body)
	}
	var er protocol.EnrollResponse
	if err := json.Unmarshal(resp.body, &er); err != nil {
		e.t.Fatal(err)
	}
	return agent{endpoint: er.Endpoint, nodeKey: req.NodeKey}
}

// reportFixture is testdata/report.json.
func reportFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createJob stores a signed job for a, the way the controller does, and
// returns it.
func (e *env) createJob(a agent, key string, updates ...string) store.Job {
	e.t.Helper()
	return e.createJobT(e.t, a, key, updates...)
}

// createJobT is createJob failing t, for fuzz functions.
func (e *env) createJobT(t testing.TB, a agent, key string, updates ...string) store.Job {
	t.Helper()
	ctx := context.Background()
	last, err := e.db.LastJobSeqs(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	j := store.Job{Job: plan.Job{
		Endpoint: a.endpoint, Client: "acme", Ring: "canary", Updates: updates,
		NotAfter: e.clock.Now().Add(4 * time.Hour), Reboot: schema.RebootIfRequired,
		Revision: "c0ffee", IdempotencyKey: key,
	}, ID: "job-" + key, Seq: last[a.endpoint] + 1}
	p := protocol.JobPayload{
		ID: j.ID, Endpoint: j.Endpoint, Seq: j.Seq, NotAfter: j.NotAfter, Reboot: string(j.Reboot),
		Revision: j.Revision, IdempotencyKey: j.IdempotencyKey,
	}
	for _, u := range j.Updates {
		p.Updates = append(p.Updates, protocol.JobUpdate{ID: u, Source: "windows-update", Name: u})
	}
	sj, err := protocol.SignJob(e.key, p)
	if err != nil {
		t.Fatal(err)
	}
	j.Payload, j.Signature = sj.Payload, sj.Signature
	created, err := e.db.CreateJobs(ctx, "acme", []store.Job{j}, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 {
		t.Fatalf("job %s not created", key)
	}
	return created[0]
}

// poll long-polls for a's jobs and opens them with the controller's key.
func (e *env) poll(ctx context.Context, a agent, wait string) ([]protocol.JobPayload, response) {
	e.t.Helper()
	resp := e.request(ctx, http.MethodGet, protocol.PathJobs+"?wait="+wait, nil, a.auth()...)
	if resp.status != http.StatusOK {
		return nil, resp
	}
	var jr protocol.JobsResponse
	if err := json.Unmarshal(resp.body, &jr); err != nil {
		e.t.Fatalf("jobs answer: %v: %s", err, resp.body)
	}
	pub := e.key.Public().(ed25519.PublicKey)
	var jobs []protocol.JobPayload
	for _, sj := range jr.Jobs {
		p, err := protocol.OpenJob(pub, sj)
		if err != nil {
			e.t.Fatal(err)
		}
		jobs = append(jobs, p)
	}
	return jobs, resp
}

// waitForPolls blocks until n long-polls of endpoint wait. It synchronises
// the test with the server; it asserts nothing about time.
func (e *env) waitForPolls(endpoint string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		e.api.waiters.mu.Lock()
		got := len(e.api.waiters.byEndpoint[endpoint])
		e.api.waiters.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d long-polls of %s waiting, want %d", got, endpoint, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// stateJSON is the stored state of every endpoint, encoded.
func (e *env) stateJSON() string {
	e.t.Helper()
	snap, err := e.db.Snapshot(context.Background(), e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	var b bytes.Buffer
	if err := protocol.EncodeSnapshot(&b, snap); err != nil {
		e.t.Fatal(err)
	}
	return b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
