package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
)

// newEnrollToken creates an enrollment token with the admin token and
// returns what the API answered.
func (e *env) newEnrollToken(req protocol.EnrollTokenRequest) protocol.EnrollTokenCreated {
	e.t.Helper()
	resp := e.as(adminToken, http.MethodPost, protocol.PathEnrollTokens, req)
	if resp.status != http.StatusCreated {
		e.t.Fatalf("create enrollment token %+v: %d %s", req, resp.status, resp.body)
	}
	var tc protocol.EnrollTokenCreated
	if err := json.Unmarshal(resp.body, &tc); err != nil {
		e.t.Fatal(err)
	}
	return tc
}

// enrollTokens lists the enrollment tokens, of client when it is set.
func (e *env) enrollTokens(client string) []protocol.EnrollToken {
	e.t.Helper()
	path := protocol.PathEnrollTokens
	if client != "" {
		path += "?client=" + client
	}
	resp := e.as(adminToken, http.MethodGet, path, nil)
	if resp.status != http.StatusOK {
		e.t.Fatalf("list enrollment tokens: %d %s", resp.status, resp.body)
	}
	var list protocol.EnrollTokenList
	if err := json.Unmarshal(resp.body, &list); err != nil {
		e.t.Fatal(err)
	}
	return list.Tokens
}

// TestEnrollWithToken: an agent enrolls with a token of its client, once
// per use, and a retry of its enrollment uses nothing; a token of
// another client, revoked, expired or used up is refused with what to
// do, and counted by reason.
func TestEnrollWithToken(t *testing.T) {
	e := newEnv(t)
	pilot := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acme", Name: "acme-pilot", MaxUses: 2, ExpiresIn: "24h",
		Labels: map[string]string{"ring": "pilot"}})
	old := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acme", Name: "acme-old"})
	if resp := e.as(adminToken, http.MethodDelete, protocol.EnrollTokenPath("acme-old"), nil); resp.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", resp.status, resp.body)
	}
	short := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acme", Name: "acme-short", ExpiresIn: "1h"})

	tests := []struct {
		name       string
		req        protocol.EnrollRequest
		advance    time.Duration
		wantStatus int
		wantID     string
		wantMsg    string
		wantReason string
	}{
		{name: "a token of the client enrolls", req: enrollRequest("acme", pilot.Secret, "WS-001"), wantStatus: 200, wantID: "acme-ws-001"},
		{name: "a retry of the same enrollment uses nothing", req: enrollRequest("acme", pilot.Secret, "WS-001"), wantStatus: 200, wantID: "acme-ws-001"},
		{name: "another client's token", req: enrollRequest("globex", pilot.Secret, "GX-1"), wantStatus: 403,
			wantMsg: `enrollment token "acme-pilot" is not a token of this client`, wantReason: reasonTokenOtherClient},
		{name: "a revoked token", req: enrollRequest("acme", old.Secret, "WS-002"), wantStatus: 403,
			wantMsg: `enrollment token "acme-old" is revoked: ask for a new one (patchctl enroll create --client acme)`, wantReason: reasonTokenRevoked},
		{name: "an unknown token", req: enrollRequest("acme", protocol.EnrollTokenPrefix+"made-up-0123456789abcdef", "WS-002"), wantStatus: 401,
			wantMsg: "unknown enrollment token: ask for a new one (patchctl enroll create --client acme)", wantReason: reasonTokenUnknown},
		{name: "the last use", req: enrollRequest("acme", pilot.Secret, "WS-003"), wantStatus: 200, wantID: "acme-ws-003"},
		{name: "a used-up token", req: enrollRequest("acme", pilot.Secret, "WS-004"), wantStatus: 403,
			wantMsg: `enrollment token "acme-pilot" is used up: ask for a new one (patchctl enroll create --client acme)`, wantReason: reasonTokenUsedUp},
		{name: "a retry after the last use is still answered", req: enrollRequest("acme", pilot.Secret, "WS-003"), wantStatus: 200, wantID: "acme-ws-003"},
		{name: "an expired token", req: enrollRequest("acme", short.Secret, "WS-005"), advance: time.Hour, wantStatus: 403,
			wantMsg: `enrollment token "acme-short" is expired`, wantReason: reasonTokenExpired},
		{name: "the static secret keeps working", req: enrollRequest("acme", acmeSecret, "WS-006"), wantStatus: 200, wantID: "acme-ws-006"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(tt.advance)
			before := e.enrollFailures()
			resp := e.post(protocol.PathEnroll, tt.req)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus != 200 {
				if msg := resp.errorBody(t).Message; !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("message %q, want it to say %q", msg, tt.wantMsg)
				}
				if after := e.enrollFailures(); after[tt.wantReason] != before[tt.wantReason]+1 {
					t.Errorf("refusals counted %v, then %v: want one more %s", before, after, tt.wantReason)
				}
				return
			}
			var er protocol.EnrollResponse
			if err := json.Unmarshal(resp.body, &er); err != nil {
				t.Fatal(err)
			}
			if er.Endpoint != tt.wantID {
				t.Errorf("endpoint %q, want %q", er.Endpoint, tt.wantID)
			}
		})
	}
	var uses []string
	for _, tok := range e.enrollTokens("acme") {
		uses = append(uses, tok.Name+" "+tok.State+" "+strings.Repeat("x", int(tok.Uses)))
	}
	if diff := cmp.Diff([]string{"acme-pilot used-up xx", "acme-old revoked ", "acme-short expired "}, uses); diff != "" {
		t.Errorf("tokens after the enrollments (-want +got):\n%s", diff)
	}
	for method, want := range map[string]float64{enrollByToken: 2, enrollBySecret: 1} {
		if got := testutil.ToFloat64(e.api.enrollments.WithLabelValues(method)); got != want {
			t.Errorf("patchline_enrollments_total{method=%q} = %v, want %v", method, got, want)
		}
	}
	ep, err := e.db.EndpointByID(context.Background(), "acme-ws-001")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Labels["ring"] != "pilot" || ep.Token != pilot.Token.ID {
		t.Errorf("endpoint enrolled with labels %v and token %d, want ring=pilot and token %d", ep.Labels, ep.Token, pilot.Token.ID)
	}
	var enrolls []string
	entries, err := e.db.Audit(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range entries {
		if a.Kind == protocol.AuditEnroll {
			enrolls = append(enrolls, a.Endpoint+" "+string(a.Detail))
		}
		if strings.Contains(string(a.Detail), pilot.Secret) {
			t.Errorf("audit entry %s holds a token's secret", a.Kind)
		}
	}
	want := []string{
		`acme-ws-001 {"hostname":"WS-001","token":"acme-pilot"}`,
		`acme-ws-003 {"hostname":"WS-003","token":"acme-pilot"}`,
		`acme-ws-006 {"hostname":"WS-006"}`,
	}
	if diff := cmp.Diff(want, enrolls); diff != "" {
		t.Errorf("enroll audit entries (-want +got):\n%s", diff)
	}
}

// TestEnrollmentLabelsWin: the labels of the token an endpoint enrolled
// with are merged into every report, over the agent's own.
func TestEnrollmentLabelsWin(t *testing.T) {
	e := newEnv(t)
	tok := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acme", Labels: map[string]string{"ring": "pilot", "msp": "north"}})
	req := enrollRequest("acme", tok.Secret, "WS-001")
	resp := e.post(protocol.PathEnroll, req)
	if resp.status != http.StatusOK {
		t.Fatalf("enroll: %d %s", resp.status, resp.body)
	}
	a := agent{endpoint: "acme-ws-001", nodeKey: req.NodeKey}
	// The fixture reports ring=canary and site=hq.
	if resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...); resp.status != http.StatusOK {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	ep, err := e.db.EndpointSnapshot(context.Background(), a.endpoint, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ring": "pilot", "site": "hq", "msp": "north"}
	if diff := cmp.Diff(want, ep.Labels); diff != "" {
		t.Errorf("labels after a report (-want +got):\n%s", diff)
	}
}

// TestEnrollTokenAdmin: tokens are created with what the request gives
// (a name made up when it gives none), listed without secrets, by client,
// and revoked by id or name once; bad requests name the field.
func TestEnrollTokenAdmin(t *testing.T) {
	e := newEnv(t)
	created := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acme", Name: "acme-pilot", MaxUses: 100, ExpiresIn: "168h",
		Labels: map[string]string{"ring": "pilot", "site": "hq"}})
	if !strings.HasPrefix(created.Secret, protocol.EnrollTokenPrefix) || len(created.Secret) < 40 {
		t.Errorf("secret %q: want %s and 32 random bytes", created.Secret, protocol.EnrollTokenPrefix)
	}
	wantTok := protocol.EnrollToken{ID: created.Token.ID, Name: "acme-pilot", Client: "acme", Labels: map[string]string{"ring": "pilot", "site": "hq"},
		ExpiresAt: t0.Add(168 * time.Hour), MaxUses: 100, State: protocol.EnrollTokenActive, CreatedAt: t0, CreatedBy: protocol.BootstrapTokenName}
	if diff := cmp.Diff(wantTok, created.Token); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	unnamed := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "globex"})
	if !strings.HasPrefix(unnamed.Token.Name, "globex-") || protocol.CheckEnrollTokenName(unnamed.Token.Name) != nil {
		t.Errorf("made-up name %q, want globex-<hex>", unnamed.Token.Name)
	}
	if created.Warning != "" || unnamed.Warning != "" {
		t.Errorf("warnings for clients the fleet repo has: %q, %q", created.Warning, unnamed.Warning)
	}
	if typo := e.newEnrollToken(protocol.EnrollTokenRequest{Client: "acmee"}); !strings.Contains(typo.Warning, `the fleet repo has no client "acmee"`) {
		t.Errorf("token for a client the fleet repo does not have: warning %q, want one naming the client", typo.Warning)
	}
	if got := e.enrollTokens("acme"); len(got) != 1 || got[0].Name != "acme-pilot" {
		t.Errorf("acme's tokens: %+v", got)
	}
	if got := e.enrollTokens(""); len(got) != 3 {
		t.Errorf("every token: %+v", got)
	}
	resp := e.as(adminToken, http.MethodGet, protocol.PathEnrollTokens, nil)
	if strings.Contains(string(resp.body), created.Secret) || strings.Contains(string(resp.body), "hash") {
		t.Errorf("the list shows a secret or hash: %s", resp.body)
	}

	for _, tt := range []struct {
		name, ref  string
		wantStatus int
	}{
		{"by name", "acme-pilot", 200},
		{"again", "acme-pilot", 409},
		{"by id", "2", 200},
		{"an unknown name", "nobody", 404},
		{"an unknown id", "99", 404},
		{"a name no token can have", "NOBODY", 400},
	} {
		if resp := e.as(adminToken, http.MethodDelete, protocol.EnrollTokenPath(tt.ref), nil); resp.status != tt.wantStatus {
			t.Errorf("revoke %s (%s): %d %s, want %d", tt.ref, tt.name, resp.status, resp.body, tt.wantStatus)
		}
	}

	for _, tt := range []struct {
		name      string
		req       protocol.EnrollTokenRequest
		wantField string
	}{
		{"no client", protocol.EnrollTokenRequest{}, "client:"},
		{"a client id no client can have", protocol.EnrollTokenRequest{Client: "Acme Corp"}, "client:"},
		{"a name taken by a revoked token", protocol.EnrollTokenRequest{Client: "acme", Name: "acme-pilot"}, "exists"},
		{"a name of digits", protocol.EnrollTokenRequest{Client: "acme", Name: "42"}, "name:"},
		{"a label with a control character", protocol.EnrollTokenRequest{Client: "acme", Labels: map[string]string{"ring": "pi\x1blot"}}, "labels"},
		{"negative uses", protocol.EnrollTokenRequest{Client: "acme", MaxUses: -1}, "maxUses:"},
		{"a lifetime that is no duration", protocol.EnrollTokenRequest{Client: "acme", ExpiresIn: "7 days"}, "expiresIn:"},
		{"a lifetime of a century", protocol.EnrollTokenRequest{Client: "acme", ExpiresIn: "876000h"}, "expiresIn:"},
	} {
		resp := e.as(adminToken, http.MethodPost, protocol.PathEnrollTokens, tt.req)
		if resp.status/100 != 4 || !strings.Contains(resp.errorBody(t).Message, tt.wantField) {
			t.Errorf("%s: %d %s, want a 4xx naming %q", tt.name, resp.status, resp.body, tt.wantField)
		}
	}

	read := e.newToken("read", nil, protocol.ScopeRead)
	if resp := e.as(read, http.MethodPost, protocol.PathEnrollTokens, protocol.EnrollTokenRequest{Client: "acme"}); resp.status != http.StatusForbidden {
		t.Errorf("a read token creates an enrollment token: %d %s", resp.status, resp.body)
	}
	entries, err := e.db.Audit(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range entries {
		if strings.HasPrefix(string(a.Kind), "enroll-token") {
			kinds = append(kinds, string(a.Kind)+" "+a.Client)
		}
	}
	wantKinds := []string{"enroll-token-created acme", "enroll-token-created globex", "enroll-token-created acmee", "enroll-token-revoked acme", "enroll-token-revoked globex"}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

// TestNoSecretsFile: without a secrets file no token is the bootstrap
// admin's, not even an empty one, and enrollment takes tokens only.
func TestNoSecretsFile(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Secrets = nil })
	for _, token := range []string{"", adminToken, " "} {
		if resp := e.as(token, http.MethodGet, protocol.PathEnrollTokens, nil); resp.status != http.StatusUnauthorized {
			t.Errorf("token %q: %d %s, want 401", token, resp.status, resp.body)
		}
	}
	if resp := e.post(protocol.PathEnroll, enrollRequest("acme", acmeSecret, "WS-1")); resp.status != http.StatusUnauthorized {
		t.Errorf("enrollment with a static secret and no secrets file: %d %s", resp.status, resp.body)
	}
}
