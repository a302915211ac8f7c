package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
)

// as sends a request with token as its bearer token; body is JSON (or
// as is, when it is a string or []byte), nil for none.
func (e *env) as(token, method, path string, body any) response {
	e.t.Helper()
	var b *bytes.Reader
	if body != nil {
		b = bytes.NewReader(jsonBytes(e.t, body))
	} else {
		b = bytes.NewReader(nil)
	}
	return e.request(context.Background(), method, path, b, "Authorization", "Bearer "+token)
}

// newToken creates a token with the admin token and returns its secret.
func (e *env) newToken(name string, clients []string, scopes ...protocol.Scope) string {
	e.t.Helper()
	resp := e.as(adminToken, http.MethodPost, protocol.PathTokens, protocol.TokenRequest{Name: name, Scopes: scopes, Clients: clients})
	if resp.status != http.StatusCreated {
		e.t.Fatalf("create token %s: %d %s", name, resp.status, resp.body)
	}
	var tc protocol.TokenCreated
	if err := json.Unmarshal(resp.body, &tc); err != nil {
		e.t.Fatal(err)
	}
	return tc.Secret
}

// enrollGlobex enrolls hostname into globex (enroll does acme) and
// returns its credentials.
func (e *env) enrollGlobex(hostname string) agent {
	e.t.Helper()
	// globex's secret is given hashed in testdata/secrets.json.
	req := enrollRequest("globex", globexSecret, hostname)
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

// TestEachScopeOnEachRoute: every admin route answers each kind of token
// as its scope allows, and refuses the others with a 403 naming the scope
// needed.
func TestEachScopeOnEachRoute(t *testing.T) {
	e := newEnv(t)
	tokens := map[string]string{
		"bootstrap":   adminToken,
		"admin":       e.newToken("admin", nil, protocol.ScopeAdmin),
		"read":        e.newToken("read", nil, protocol.ScopeRead),
		"read-acme":   e.newToken("read-acme", []string{"acme"}, protocol.ScopeRead),
		"backup":      e.newToken("backup", nil, protocol.ScopeBackup),
		"read-backup": e.newToken("read-backup", nil, protocol.ScopeBackup, protocol.ScopeRead),
	}
	// Each route's request; n makes the target of one that changes
	// something fresh.
	type route struct {
		name  string
		scope protocol.Scope
		req   func(n int) (method, path string, body any)
	}
	routes := []route{
		{"status", protocol.ScopeRead, func(int) (string, string, any) { return "GET", "/v1/status", nil }},
		{"state", protocol.ScopeRead, func(int) (string, string, any) { return "GET", "/v1/state", nil }},
		{"audit", protocol.ScopeRead, func(int) (string, string, any) { return "GET", "/v1/audit", nil }},
		{"endpoints", protocol.ScopeRead, func(int) (string, string, any) { return "GET", protocol.PathEndpoints, nil }},
		{"backup", protocol.ScopeBackup, func(int) (string, string, any) { return "GET", "/v1/backup", nil }},
		{"list tokens", protocol.ScopeAdmin, func(int) (string, string, any) { return "GET", protocol.PathTokens, nil }},
		{"create token", protocol.ScopeAdmin, func(n int) (string, string, any) {
			return "POST", protocol.PathTokens, protocol.TokenRequest{Name: fmt.Sprint("made-", n), Scopes: []protocol.Scope{protocol.ScopeRead}}
		}},
		{"revoke token", protocol.ScopeAdmin, func(n int) (string, string, any) {
			name := fmt.Sprint("victim-", n)
			e.newToken(name, nil, protocol.ScopeRead)
			return "DELETE", protocol.TokenPath(name), nil
		}},
		{"revoke endpoint", protocol.ScopeAdmin, func(n int) (string, string, any) {
			return "POST", protocol.EndpointRevokePath(e.enroll(fmt.Sprint("REVOKE-", n)).endpoint), nil
		}},
		{"delete endpoint", protocol.ScopeAdmin, func(n int) (string, string, any) {
			return "DELETE", protocol.EndpointPath(e.enroll(fmt.Sprint("DELETE-", n)).endpoint), nil
		}},
	}
	holds := map[string][]protocol.Scope{
		"bootstrap": {protocol.ScopeRead, protocol.ScopeBackup, protocol.ScopeAdmin},
		"admin":     {protocol.ScopeRead, protocol.ScopeBackup, protocol.ScopeAdmin},
		"read":      {protocol.ScopeRead}, "read-acme": {protocol.ScopeRead},
		"backup":      {protocol.ScopeBackup},
		"read-backup": {protocol.ScopeRead, protocol.ScopeBackup},
	}
	n := 0
	for _, who := range slices.Sorted(maps.Keys(tokens)) {
		for _, rt := range routes {
			n++
			method, path, body := rt.req(n)
			resp := e.as(tokens[who], method, path, body)
			allowed := slices.Contains(holds[who], rt.scope)
			switch {
			case allowed && (resp.status < 200 || resp.status > 299):
				t.Errorf("%s token on %s: %d %s, want it allowed", who, rt.name, resp.status, resp.body)
			case !allowed && resp.status != http.StatusForbidden:
				t.Errorf("%s token on %s: %d %s, want 403", who, rt.name, resp.status, resp.body)
			case !allowed:
				eb := resp.errorBody(t)
				if eb.Code != protocol.CodeForbidden || !strings.Contains(eb.Message, "needs the "+string(rt.scope)+" scope") {
					t.Errorf("%s token on %s: %q, want a refusal naming the %s scope", who, rt.name, eb.Message, rt.scope)
				}
			}
		}
	}
}

// TestTokenRequestsAreChecked: a token request with a bad name, scope or
// client is refused with a 400 naming the field, and nothing is stored.
func TestTokenRequestsAreChecked(t *testing.T) {
	e := newEnv(t)
	e.newToken("taken", nil, protocol.ScopeRead)
	read := []protocol.Scope{protocol.ScopeRead}
	tests := []struct {
		name string
		body any
		code int
		want string
	}{
		{"no name", protocol.TokenRequest{Scopes: read}, 400, "name: missing"},
		{"upper case", protocol.TokenRequest{Name: "CI", Scopes: read}, 400, `name: "CI": character 'C' at byte 0`},
		{"a space", protocol.TokenRequest{Name: "ci acme", Scopes: read}, 400, `character ' ' at byte 2`},
		{"a terminal escape", protocol.TokenRequest{Name: "ci\x1b[2J", Scopes: read}, 400, `name: "ci\x1b[2J"`},
		{"too long", protocol.TokenRequest{Name: strings.Repeat("a", 65), Scopes: read}, 400, "name: 65 bytes, at most 64"},
		{"the secrets file's name", protocol.TokenRequest{Name: "adminToken", Scopes: read}, 400, "name:"},
		{"no scope", protocol.TokenRequest{Name: "ci"}, 400, "scopes: missing: give one or more of read, backup, admin"},
		{"unknown scope", protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{"read", "write"}}, 400, `scopes[1]: unknown scope "write"`},
		{"scope twice", protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{"read", "read"}}, 400, "scopes[1]: read is given twice"},
		{"bad client", protocol.TokenRequest{Name: "ci", Scopes: read, Clients: []string{"acme", "Globex"}}, 400, `clients[1]: "Globex"`},
		{"empty client", protocol.TokenRequest{Name: "ci", Scopes: read, Clients: []string{""}}, 400, "clients[0]: missing"},
		{"client twice", protocol.TokenRequest{Name: "ci", Scopes: read, Clients: []string{"acme", "acme"}}, 400, "clients[1]: acme is given twice"},
		{"backup for a client", protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{"read", "backup"}, Clients: []string{"acme"}}, 400,
			"clients: a token limited to clients can hold only the read scope"},
		{"admin for a client", protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{"admin"}, Clients: []string{"acme"}}, 400,
			"clients: a token limited to clients can hold only the read scope"},
		{"unknown field", `{"name": "ci", "scopes": ["read"], "secret": "mine"}`, 400, `unknown field "secret"`},
		{"not JSON", `name=ci`, 400, "malformed JSON"},
		{"a name taken", protocol.TokenRequest{Name: "taken", Scopes: read}, 409, "choose another name"},
	}
	before := tokenNames(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.as(adminToken, http.MethodPost, protocol.PathTokens, tt.body)
			if resp.status != tt.code {
				t.Fatalf("%d %s, want %d", resp.status, resp.body, tt.code)
			}
			if msg := resp.errorBody(t).Message; !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
		})
	}
	if after := tokenNames(t, e); !slices.Equal(before, after) {
		t.Errorf("tokens %v after refused requests, want %v", after, before)
	}
	for _, tc := range []struct{ path, want string }{
		{protocol.TokenPath("adminToken"), "change it in the secrets file"},
		{protocol.TokenPath("Bad%20Name"), `name: "Bad Name"`},
	} {
		if resp := e.as(adminToken, http.MethodDelete, tc.path, nil); resp.status != 400 || !strings.Contains(resp.errorBody(t).Message, tc.want) {
			t.Errorf("DELETE %s: %d %s, want 400 saying %q", tc.path, resp.status, resp.body, tc.want)
		}
	}
	if resp := e.as(adminToken, http.MethodDelete, protocol.TokenPath("nobody"), nil); resp.status != 404 {
		t.Errorf("revoking an unknown token: %d %s, want 404", resp.status, resp.body)
	}
}

// tokenNames lists the stored tokens' names.
func tokenNames(t *testing.T, e *env) []string {
	t.Helper()
	stored, err := e.db.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tok := range stored {
		names = append(names, tok.Name)
	}
	return names
}

// TestTokenLifecycle: a created token works at once, is listed (never
// with its secret) with who made it and when it was last used, is
// refused the moment it is revoked (401, logged with its name, counted),
// and stays listed, revoked; the audit log says who did what.
func TestTokenLifecycle(t *testing.T) {
	e, logs := newLoggedEnv(t)
	e.enroll("WS-001")
	ops := e.newToken("ops", nil, protocol.ScopeAdmin)
	if !strings.HasPrefix(ops, protocol.TokenPrefix) || len(ops) != len(protocol.TokenPrefix)+43 {
		t.Errorf("secret %q, want %s and 32 bytes in base64url", ops, protocol.TokenPrefix)
	}
	resp := e.as(ops, http.MethodPost, protocol.PathTokens, protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{protocol.ScopeRead}, Clients: []string{"globex", "acme"}})
	if resp.status != http.StatusCreated {
		t.Fatalf("create with the ops token: %d %s", resp.status, resp.body)
	}
	var created protocol.TokenCreated
	if err := json.Unmarshal(resp.body, &created); err != nil {
		t.Fatal(err)
	}
	ci := created.Secret
	if created.Token.CreatedBy != "ops" || !slices.Equal(created.Token.Clients, []string{"acme", "globex"}) {
		t.Errorf("created %+v, want made by ops for acme and globex", created.Token)
	}
	if resp := e.as(ci, http.MethodGet, "/v1/status", nil); resp.status != 200 {
		t.Fatalf("the new token at once: %d %s", resp.status, resp.body)
	}

	list := e.as(adminToken, http.MethodGet, protocol.PathTokens, nil)
	if list.status != 200 {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	for _, secret := range []string{ops, ci} {
		h := sha256.Sum256([]byte(secret))
		if bytes.Contains(list.body, []byte(secret)) || bytes.Contains(list.body, []byte(fmt.Sprintf("%x", h))) {
			t.Errorf("the list shows a secret or its hash: %s", list.body)
		}
	}
	var tl protocol.TokenList
	if err := json.Unmarshal(list.body, &tl); err != nil {
		t.Fatal(err)
	}
	want := []protocol.Token{
		{Name: "ci", Scopes: []protocol.Scope{"read"}, Clients: []string{"acme", "globex"}, CreatedAt: t0, CreatedBy: "ops", LastUsed: t0},
		{Name: "ops", Scopes: []protocol.Scope{"admin"}, CreatedAt: t0, CreatedBy: "adminToken", LastUsed: t0},
	}
	if diff := cmp.Diff(want, tl.Tokens); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}

	e.clock.Advance(90 * 1e9)
	if resp := e.as(ops, http.MethodDelete, protocol.TokenPath("ci"), nil); resp.status != 200 {
		t.Fatalf("revoke: %d %s", resp.status, resp.body)
	}
	failures := testutil.ToFloat64(e.api.refusals.admin)
	for _, path := range []string{"/v1/status", "/v1/state", "/v1/audit"} {
		resp := e.as(ci, http.MethodGet, path, nil)
		if resp.status != 401 || !strings.Contains(resp.errorBody(t).Message, `token "ci" is revoked`) {
			t.Errorf("%s with the revoked token: %d %s, want 401 saying it is revoked", path, resp.status, resp.body)
		}
	}
	if got := testutil.ToFloat64(e.api.refusals.admin) - failures; got != 3 {
		t.Errorf("%g refusals counted, want 3", got)
	}
	if l := logs.String(); !strings.Contains(l, `msg="admin token refused" reason=revoked`) || !strings.Contains(l, "token=ci") || strings.Contains(l, ci) {
		t.Errorf("log does not name the revoked token, or shows its secret:\n%s", l)
	}
	if resp := e.as(ops, http.MethodDelete, protocol.TokenPath("ci"), nil); resp.status != 409 {
		t.Errorf("revoking twice: %d %s, want 409", resp.status, resp.body)
	}
	if resp := e.as(adminToken, http.MethodPost, protocol.PathTokens, protocol.TokenRequest{Name: "ci", Scopes: []protocol.Scope{"read"}}); resp.status != 409 {
		t.Errorf("the revoked token's name again: %d %s, want 409", resp.status, resp.body)
	}

	// A fresh server over the same store (patchd restarted) loads the
	// tokens: the revoked one stays refused, the other works.
	restarted := newEnv(t, func(c *Config) { c.Store = e.db })
	if resp := restarted.as(ci, http.MethodGet, "/v1/status", nil); resp.status != 401 {
		t.Errorf("the revoked token after a restart: %d %s, want 401", resp.status, resp.body)
	}
	if resp := restarted.as(ops, http.MethodGet, "/v1/status", nil); resp.status != 200 {
		t.Errorf("the ops token after a restart: %d %s, want 200", resp.status, resp.body)
	}

	audit := e.as(adminToken, http.MethodGet, "/v1/audit", nil)
	var page protocol.AuditPage
	if err := json.Unmarshal(audit.body, &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range page.Entries {
		if en.Kind == protocol.AuditTokenCreated || en.Kind == protocol.AuditTokenRevoked {
			got = append(got, string(en.Kind)+" "+string(en.Detail))
		}
	}
	wantAudit := []string{
		`token-created {"token":"ops","scopes":["admin"],"by":"adminToken"}`,
		`token-created {"token":"ci","scopes":["read"],"clients":["acme","globex"],"by":"ops"}`,
		`token-revoked {"token":"ci","scopes":["read"],"clients":["acme","globex"],"by":"ops"}`,
	}
	if diff := cmp.Diff(wantAudit, got); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

// TestTokenSecretNeverStored: the store's files hold a token's hash,
// never its secret.
func TestTokenSecretNeverStored(t *testing.T) {
	e := newEnv(t)
	secret := e.newToken("ci", nil, protocol.ScopeRead)
	hash := sha256.Sum256([]byte(secret))
	stored, err := e.db.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || !bytes.Equal(stored[0].Hash, hash[:]) {
		t.Fatalf("stored %+v, want ci with the SHA-256 of its secret", stored)
	}
	// The database and its write-ahead log, where a fresh write is.
	files, err := filepath.Glob(e.dbPath + "*")
	if err != nil || len(files) < 2 {
		t.Fatalf("store files %v (%v), want the database and its log", files, err)
	}
	hashFound := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(strings.TrimPrefix(secret, protocol.TokenPrefix))) {
			t.Errorf("%s holds the token's secret", f)
		}
		hashFound = hashFound || bytes.Contains(b, hash[:])
	}
	if !hashFound {
		t.Error("the token's hash is in none of the store's files: the test read the wrong files")
	}
}
