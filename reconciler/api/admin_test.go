package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

func TestAdminRoutesNeedTheAdminToken(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	for _, path := range []string{"/v1/status", "/v1/state", "/v1/audit", "/v1/backup"} {
		for _, tc := range []struct {
			name   string
			header []string
		}{
			{"no token", nil},
			{"wrong token", []string{"Authorization", "Bearer not-the-admin-token"}},
			{"an agent's node key", a.auth()},
			{"token without the bearer scheme", []string{"Authorization", adminToken}},
		} {
			resp := e.request(context.Background(), http.MethodGet, path, nil, tc.header...)
			if resp.status != 401 || resp.errorBody(t).Code != protocol.CodeUnauthorized {
				t.Errorf("%s with %s: %d %s, want 401", path, tc.name, resp.status, resp.body)
			}
		}
	}
}

// admin sends an admin request.
func (e *env) admin(path string) response {
	e.t.Helper()
	return e.request(context.Background(), http.MethodGet, path, nil, "Authorization", "Bearer "+adminToken)
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	resp := e.admin("/v1/status")
	if resp.status != 200 {
		t.Fatalf("status: %d %s", resp.status, resp.body)
	}
	var got protocol.Status
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testStatus(), &got); diff != "" {
		t.Errorf("status document (-want +got):\n%s", diff)
	}
}

func TestStatusErrorIsNotLeaked(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Status = func(context.Context) (*protocol.Status, error) {
			return nil, errors.New("open /var/lib/patchd/secret-path: denied")
		}
	})
	resp := e.admin("/v1/status")
	if resp.status != 500 || resp.errorBody(t).Code != protocol.CodeInternal {
		t.Fatalf("status: %d %s, want 500 internal", resp.status, resp.body)
	}
	if strings.Contains(string(resp.body), "secret-path") {
		t.Errorf("the answer leaks the internal error: %s", resp.body)
	}
}

func TestStateExportDecodes(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	e.enroll("WS-002")
	if resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...); resp.status != 200 {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	e.createJob(a, "k1", "KB5044284")
	resp := e.admin("/v1/state")
	if resp.status != 200 {
		t.Fatalf("state: %d %s", resp.status, resp.body)
	}
	snap, err := protocol.DecodeSnapshot(bytes.NewReader(resp.body))
	if err != nil {
		t.Fatalf("the export does not decode with the state package: %v", err)
	}
	if len(snap.Endpoints) != 2 {
		t.Fatalf("%d endpoints exported, want 2", len(snap.Endpoints))
	}
	ep := snap.Endpoints[0]
	if ep.ID != a.endpoint || len(ep.Updates) != 2 || ep.Updates[0].InFlightJob == nil {
		t.Errorf("exported endpoint %+v: want %s with 2 updates, the first in flight", ep, a.endpoint)
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.enroll(fmt.Sprint("WS-00", i))
	}
	page := func(query string) (protocol.AuditPage, response) {
		resp := e.admin("/v1/audit" + query)
		var p protocol.AuditPage
		if resp.status == 200 {
			if err := json.Unmarshal(resp.body, &p); err != nil {
				t.Fatal(err)
			}
		}
		return p, resp
	}
	p1, _ := page("?limit=2")
	p2, _ := page(fmt.Sprintf("?after=%d&limit=2", p1.Next))
	p3, _ := page(fmt.Sprintf("?after=%d", p2.Next))
	if len(p1.Entries) != 2 || len(p2.Entries) != 1 || len(p3.Entries) != 0 {
		t.Fatalf("pages of %d, %d and %d entries, want 2, 1 and 0", len(p1.Entries), len(p2.Entries), len(p3.Entries))
	}
	if p3.Next != p2.Next {
		t.Errorf("an empty page moved next from %d to %d", p2.Next, p3.Next)
	}
	first := p1.Entries[0]
	if first.Kind != protocol.AuditEnroll || first.Client != "acme" || !first.At.Equal(t0) || len(first.Detail) == 0 {
		t.Errorf("first entry %+v: want the enrollment of an acme endpoint at t0 with its detail", first)
	}
	for _, q := range []string{"?after=x", "?limit=0", "?limit=100000", "?after=-1"} {
		if _, resp := page(q); resp.status != 400 {
			t.Errorf("audit%s: %d %s, want 400", q, resp.status, resp.body)
		}
	}
}

func TestGitHook(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"ref": "refs/heads/main", "after": "c0ffee"}`)
	good := source.GitHubSignature([]byte(webhookSecret), body)
	large := bytes.Repeat([]byte("x"), maxWebhookBody+1)
	tests := []struct {
		name       string
		header     []string
		body       []byte // the push event when nil
		wantStatus int
	}{
		{"GitHub signature", []string{"X-Hub-Signature-256", good}, nil, 202},
		{"signature with another secret", []string{"X-Hub-Signature-256", "sha256=" + strings.Repeat("00", 32)}, nil, 401},
		{"GitLab token", []string{"X-Gitlab-Token", webhookSecret}, nil, 202},
		{"wrong GitLab token", []string{"X-Gitlab-Token", "guess"}, nil, 401},
		{"no signature", nil, nil, 401},
		{"no signature and a large body, refused unread", nil, bytes.Repeat([]byte("x"), protocol.MaxBodyBytes), 401},
		{"signed body over 1 MiB", []string{"X-Hub-Signature-256", source.GitHubSignature([]byte(webhookSecret), large)}, large, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.body != nil {
				b = tt.body
			}
			resp := e.post("/v1/hooks/git", b, tt.header...)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			var want []string
			switch {
			case tt.wantStatus == 202:
				want = []string{"git hook"}
			case tt.wantStatus == 401:
				if msg := resp.errorBody(t).Message; !strings.Contains(msg, "webhook") {
					t.Errorf("refusal %q does not say why", msg)
				}
			}
			if diff := cmp.Diff(want, e.events.take()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("signed body sent chunked, over 1 MiB", func(t *testing.T) {
		// No Content-Length: the limit is found while reading.
		resp := e.request(context.Background(), http.MethodPost, "/v1/hooks/git", io.MultiReader(bytes.NewReader(large)),
			"X-Hub-Signature-256", source.GitHubSignature([]byte(webhookSecret), large))
		if resp.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413: %s", resp.status, resp.body)
		}
	})
}

func TestUnknownRouteAnswersWithTheEnvelope(t *testing.T) {
	e := newEnv(t)
	resp := e.request(context.Background(), http.MethodGet, "/v2/jobs", nil)
	if resp.status != 404 || resp.errorBody(t).Code != protocol.CodeNotFound {
		t.Errorf("unknown route: %d %s", resp.status, resp.body)
	}
}

func TestRequestMetricsHaveRouteLabelsOnly(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	e.post(protocol.PathReport, reportFixture(t), a.auth()...)
	job := e.createJob(a, "k1", "KB5044284")
	e.poll(context.Background(), a, "0s")
	e.post(protocol.ResultPath(job.ID), protocol.ResultRequest{Updates: []protocol.UpdateResult{
		{Update: "KB5044284", Result: protocol.ResultSucceeded}}}, a.auth()...)
	e.post(protocol.ResultPath("no-such-job"), protocol.ResultRequest{}, a.auth()...)
	e.request(context.Background(), http.MethodGet, "/v1/nowhere/"+a.endpoint, nil)

	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var requests []string
	histograms := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			var names []string
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				names = append(names, l.GetName())
			}
			for _, v := range labels {
				if strings.Contains(v, a.endpoint) || strings.Contains(v, job.ID) {
					t.Errorf("%s has an endpoint or job id in a label: %v", f.GetName(), labels)
				}
			}
			switch f.GetName() {
			case "patchline_agent_requests_total":
				if !slices.Equal(names, []string{"code", "route"}) {
					t.Errorf("request counter labels %v, want code and route", names)
				}
				requests = append(requests, fmt.Sprintf("%s %s = %g", labels["route"], labels["code"], m.GetCounter().GetValue()))
			case "patchline_agent_request_duration_seconds":
				histograms[labels["route"]] = true
			case "patchline_longpolls_waiting":
				if v := m.GetGauge().GetValue(); v != 0 {
					t.Errorf("%g long-polls waiting after all ended", v)
				}
			}
		}
	}
	slices.Sort(requests)
	want := []string{
		"/ 404 = 1",
		"GET /v1/jobs 200 = 1",
		"POST /v1/enroll 200 = 1",
		"POST /v1/jobs/{id}/result 200 = 1",
		"POST /v1/jobs/{id}/result 404 = 1",
		"POST /v1/report 200 = 1",
	}
	if diff := cmp.Diff(want, requests); diff != "" {
		t.Errorf("request counts (-want +got):\n%s", diff)
	}
	if len(histograms) != 5 {
		t.Errorf("durations observed for routes %v, want the 5 routes called", histograms)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	e := newEnv(t)
	full := func() Config {
		return Config{
			Store: e.db, Secrets: loadTestSecrets(t), SigningKey: e.api.cfg.SigningKey, Events: e.events,
			Status: e.api.cfg.Status, Registerer: prometheus.NewRegistry(),
		}
	}
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"truncated signing key", func(c *Config) { c.SigningKey = c.SigningKey[:16] }},
		{"no events", func(c *Config) { c.Events = nil }},
		{"no status", func(c *Config) { c.Status = nil }},
		{"no registerer", func(c *Config) { c.Registerer = nil }},
		{"negative lease", func(c *Config) { c.Lease = -1 }},
		{"metrics already registered", func(c *Config) { c.Registerer = e.reg }},
	}
	for _, tt := range tests {
		c := full()
		tt.change(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted the config", tt.name)
		}
	}
	if _, err := New(full()); err != nil {
		t.Errorf("complete config: %v", err)
	}
	// Without a secrets file, tokens are all in the store.
	noSecrets := full()
	noSecrets.Secrets = nil
	if _, err := New(noSecrets); err != nil {
		t.Errorf("config without secrets: %v", err)
	}
}

// TestBackup: an admin downloads a store file that verifies and holds what
// was enrolled.
func TestBackup(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	resp := e.admin("/v1/backup")
	if resp.status != http.StatusOK {
		t.Fatalf("backup: %d %s", resp.status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/vnd.sqlite3" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := resp.header.Get("Content-Length"); cl != strconv.Itoa(len(resp.body)) {
		t.Errorf("Content-Length %s for %d bytes", cl, len(resp.body))
	}
	if cd := resp.header.Get("Content-Disposition"); cd != `attachment; filename="patchline-20261112T090000Z.db"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, resp.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sqlite.Verify(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.EndpointByID(context.Background(), a.endpoint); err != nil {
		t.Errorf("the backup lacks the enrolled endpoint: %v", err)
	}
}
