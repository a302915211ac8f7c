package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestReportStoresInventory(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	e.events.take()

	resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...)
	if resp.status != 200 {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	var rr protocol.ReportResponse
	if err := json.Unmarshal(resp.body, &rr); err != nil || rr.Updates != 2 {
		t.Errorf("answer %s, want 2 updates acknowledged", resp.body)
	}
	if diff := cmp.Diff([]string{"reported acme " + a.endpoint}, e.events.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	ep, err := e.db.EndpointSnapshot(context.Background(), a.endpoint, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range ep.Updates {
		ids = append(ids, u.ID)
	}
	if diff := cmp.Diff([]string{"KB5044284", "Mozilla.Firefox@132.0.1"}, ids); diff != "" {
		t.Errorf("stored updates (-want +got):\n%s", diff)
	}
	if !ep.LastSeen.Equal(t0) || ep.Labels["ring"] != "canary" || ep.OS.Family != "windows" {
		t.Errorf("stored endpoint %+v: want last seen at the controller's time, labels and OS from the report", ep)
	}
}

// TestReportRefused lists reports the controller refuses. Nothing of a
// refused report may be stored. The answers are in
// testdata/report-errors.golden, which shows what an agent's log says.
func TestReportRefused(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	good := reportFixture(t)
	if resp := e.post(protocol.PathReport, good, a.auth()...); resp.status != 200 {
		t.Fatalf("first report: %d %s", resp.status, resp.body)
	}
	e.events.take()
	before := e.stateJSON()

	edit := func(from, to string) []byte {
		if !bytes.Contains(good, []byte(from)) {
			t.Fatalf("fixture has no %q", from)
		}
		return bytes.Replace(good, []byte(from), []byte(to), 1)
	}
	tooLarge := fmt.Appendf(nil, `{"hostname": "%s"}`, strings.Repeat("x", protocol.MaxBodyBytes))
	manyLabels := map[string]string{}
	for i := range protocol.MaxLabels + 1 {
		manyLabels[fmt.Sprint("l", i)] = "v"
	}
	tests := []struct {
		name   string
		body   []byte
		header []string
		status int
	}{
		{"body over the size limit", tooLarge, a.auth(), 413},
		{"truncated JSON", good[:len(good)/2], a.auth(), 400},
		{"syntax error", edit(`"rebootPending": false,`, `"rebootPending": false,,`), a.auth(), 400},
		{"misspelt field", edit(`"rebootPending"`, `"rebootPendng"`), a.auth(), 400},
		{"number where a string goes", edit(`"hostname": "WS-001"`, `"hostname": 1`), a.auth(), 400},
		{"bad release time", edit(`"2026-11-05T00:00:00Z"`, `"last tuesday"`), a.auth(), 400},
		{"two JSON values", append(bytes.Clone(good), "{}"...), a.auth(), 400},
		{"unknown source", edit(`"source": "winget"`, `"source": "snap"`), a.auth(), 400},
		{"the controller's own agent update", edit(`"source": "winget"`, `"source": "patchline"`), a.auth(), 400},
		{"an agent version with a control character", edit(`"rebootPending": false,`, `"rebootPending": false, "agentVersion": "1.4.2\u001b[2J",`), a.auth(), 400},
		{"unknown category", edit(`"category": "security",
      "severity": "important"`, `"category": "cosmetic",
      "severity": "important"`), a.auth(), 400},
		{"unknown severity", edit(`"severity": "important"`, `"severity": "meh"`), a.auth(), 400},
		{"update without id", edit(`"id": "KB5044284"`, `"id": ""`), a.auth(), 400},
		{"same update twice", edit(`"id": "KB5044284"`, `"id": "Mozilla.Firefox@132.0.1"`), a.auth(), 400},
		{"unknown OS family", edit(`"family": "windows"`, `"family": "beos"`), a.auth(), 400},
		{"negative job sequence", edit(`"rebootPending": false,`, `"rebootPending": false, "jobSeq": -1,`), a.auth(), 400},
		{"job sequence that would overflow", edit(`"rebootPending": false,`, `"rebootPending": false, "jobSeq": 9223372036854775807,`), a.auth(), 400},
		{"unknown reboot mode", edit(`"rebootPending": false,`, `"rebootPending": false, "reboot": {"mode": "reboot-now"},`), a.auth(), 400},
		{"negative deferrals", edit(`"rebootPending": false,`, `"rebootPending": false, "reboot": {"mode": "prompt", "deferralsUsed": -1},`), a.auth(), 400},
		{"reboot scheduled in two years", edit(`"rebootPending": false,`, `"rebootPending": false, "reboot": {"mode": "prompt", "scheduledAt": "2028-11-12T00:00:00Z"},`), a.auth(), 400},
		{"too many labels", jsonBytes(t, protocol.Report{Hostname: "WS-001", OS: protocol.OS{Family: "windows"}, Labels: manyLabels}), a.auth(), 400},
		{"terminal escape in an update id", edit(`"id": "KB5044284"`, `"id": "KB5044284\u001b]0;pwned\u0007"`), a.auth(), 400},
		{"NUL in an update id", edit(`"id": "KB5044284"`, `"id": "KB50\u000044284"`), a.auth(), 400},
		{"right-to-left override in an update id", edit(`"id": "KB5044284"`, `"id": "KB\u202e4824405"`), a.auth(), 400},
		{"markup hidden in an update id", edit(`"id": "KB5044284"`, `"id": "KB5044284 |\n| **ok** <!--"`), a.auth(), 400},
		{"terminal escape in the hostname", edit(`"hostname": "WS-001"`, `"hostname": "WS-001\u001b[2J"`), a.auth(), 400},
		{"right-to-left override in the hostname", edit(`"hostname": "WS-001"`, `"hostname": "WS-\u202e100"`), a.auth(), 400},
		{"zero-width space in a label", edit(`"site": "hq"`, `"site": "h\u200bq"`), a.auth(), 400},
		{"newline in a title", edit(`"title": "2026-11 Cumulative`, `"title": "2026-11\nCumulative`), a.auth(), 400},
		{"terminal escape in a version", edit(`"version": "132.0.1"`, `"version": "132.0.1\u001b[8m"`), a.auth(), 400},
		{"something that is not a CVE id", edit(`"CVE-2026-38063"`, `"CVE-2026-38063 (see evil.example)"`), a.auth(), 400},
		{"release time in the year 9999", edit(`"2026-11-05T00:00:00Z"`, `"9999-12-31T00:00:00Z"`), a.auth(), 400},
		{"release time before 2000", edit(`"2026-11-05T00:00:00Z"`, `"1970-01-01T00:00:00Z"`), a.auth(), 400},
		{"release time two days ahead of the controller", edit(`"2026-11-05T00:00:00Z"`, `"2026-11-14T09:00:00Z"`), a.auth(), 400},
		{"wrong node key", good, agent{a.endpoint, "not-the-node-key"}.auth(), 401},
		{"unknown endpoint", good, agent{"acme-ws-999-0000", a.nodeKey}.auth(), 401},
		{"no credentials", good, nil, 401},
	}
	var want bytes.Buffer
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.post(protocol.PathReport, tt.body, tt.header...)
			if resp.status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.status, resp.body)
			}
			eb := resp.errorBody(t)
			if eb.Code.Status() != tt.status {
				t.Errorf("code %q travels as %d, answered %d", eb.Code, eb.Code.Status(), tt.status)
			}
			fmt.Fprintf(&want, "%s\n  %d %s: %s\n", tt.name, resp.status, eb.Code, eb.Message)
			if got := e.stateJSON(); got != before {
				t.Errorf("a refused report changed the stored state:\n%s", cmp.Diff(before, got))
			}
			if ev := e.events.take(); len(ev) != 0 {
				t.Errorf("a refused report raised events %v", ev)
			}
		})
	}
	golden.Check(t, "testdata/report-errors.golden", want.Bytes())
}

func TestAgentRoutesNeedTheEndpointsOwnKey(t *testing.T) {
	e := newEnv(t)
	a, b := e.enroll("WS-001"), e.enroll("WS-002")
	wrongPair := agent{a.endpoint, b.nodeKey}
	unknown := agent{"acme-nobody-0000", a.nodeKey}
	var answers []string
	for _, cred := range []agent{wrongPair, unknown} {
		resp := e.request(context.Background(), http.MethodGet, protocol.PathJobs, nil, cred.auth()...)
		if resp.status != 401 {
			t.Fatalf("%s with %s's key: %d %s", cred.endpoint, b.endpoint, resp.status, resp.body)
		}
		answers = append(answers, string(resp.body))
	}
	if answers[0] != answers[1] {
		t.Errorf("a wrong key and an unknown endpoint answer differently, which tells endpoints apart:\n%s\n%s", answers[0], answers[1])
	}
}

// countingStore counts EndpointByID calls.
type countingStore struct {
	Store
	lookups atomic.Int64
}

func (s *countingStore) EndpointByID(ctx context.Context, id string) (store.Enrollment, error) {
	s.lookups.Add(1)
	return s.Store.EndpointByID(ctx, id)
}

// TestAuthenticationReadsEachEndpointOnce: agent requests are checked
// against an enrollment read from the store once per endpoint; an unknown
// endpoint is asked for every time (it may enroll meanwhile), and a wrong
// key is refused whether the endpoint was read before or not.
func TestAuthenticationReadsEachEndpointOnce(t *testing.T) {
	var cs *countingStore
	e := newEnv(t, func(c *Config) {
		c.MaxWait = time.Millisecond
		cs = &countingStore{Store: c.Store}
		c.Store = cs
	})
	ctx := context.Background()
	early := agent{"acme-ws-001-" + "0000", "key"}
	for range 2 {
		if resp := e.request(ctx, http.MethodGet, protocol.PathJobs, nil, early.auth()...); resp.status != http.StatusUnauthorized {
			t.Fatalf("unknown endpoint: %d %s", resp.status, resp.body)
		}
	}
	if n := cs.lookups.Load(); n != 2 {
		t.Errorf("two requests of an unknown endpoint read the store %d times, want 2", n)
	}
	a, b := e.enroll("WS-001"), e.enroll("WS-002")
	cs.lookups.Store(0)
	for i := range 3 {
		if _, resp := e.poll(ctx, a, "1ms"); resp.status != http.StatusOK {
			t.Fatalf("poll %d: %d %s", i, resp.status, resp.body)
		}
	}
	if n := cs.lookups.Load(); n != 0 {
		t.Errorf("three polls of an endpoint enrolled through this server read the store %d times, want 0", n)
	}
	// A server that did not enroll the endpoint (a restarted controller)
	// reads it once.
	cfg := e.api.cfg
	cfg.Registerer = prometheus.NewRegistry()
	restarted, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		rec := serve(&env{t: t, api: restarted}, http.MethodGet, protocol.PathJobs+"?wait=1ms", nil, a.auth())
		if rec.Code != http.StatusOK {
			t.Fatalf("poll %d after restart: %d %s", i, rec.Code, rec.Body)
		}
	}
	if n := cs.lookups.Load(); n != 1 {
		t.Errorf("three polls after a restart read the store %d times, want 1", n)
	}
	if resp := e.request(ctx, http.MethodGet, protocol.PathJobs, nil, agent{a.endpoint, b.nodeKey}.auth()...); resp.status != http.StatusUnauthorized {
		t.Errorf("another endpoint's key for a known endpoint: %d %s, want 401", resp.status, resp.body)
	}
}
