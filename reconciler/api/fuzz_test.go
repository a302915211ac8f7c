package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// storedState is the reported state, as the controller exports it.
func storedState(t *testing.T, e *env) []byte {
	t.Helper()
	snap, err := e.db.Snapshot(context.Background(), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := protocol.EncodeSnapshot(&b, snap); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// stored is everything an agent request can change: the reported state and
// the audit log.
func stored(t *testing.T, e *env) string {
	t.Helper()
	b := bytes.NewBuffer(storedState(t, e))
	audit, err := e.db.Audit(context.Background(), 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(b, "audit entries: %d\n", len(audit))
	return b.String()
}

// serve runs one request through the handler, without the network.
func serve(e *env, method, path string, body []byte, header []string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.api.Handler().ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails on a server error, on a refusal that changed what is
// stored, and on an accepted body that stored what the state snapshot
// codec refuses (text an offline snapshot could not carry).
func checkAnswer(t *testing.T, e *env, rec *httptest.ResponseRecorder, before string, body []byte) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("answer %d to %q: %s", rec.Code, body, rec.Body)
	}
	if rec.Code != http.StatusOK {
		if after := stored(t, e); after != before {
			t.Fatalf("a refused body (%d %s) changed what is stored", rec.Code, rec.Body)
		}
		return
	}
	if _, err := protocol.DecodeSnapshot(bytes.NewReader(storedState(t, e))); err != nil {
		t.Fatalf("accepted %q, and the stored state no longer decodes: %v", body, err)
	}
}

func FuzzReportHandler(f *testing.F) {
	good := reportFixture(f)
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add(bytes.Replace(good, []byte(`"winget"`), []byte(`"snap"`), 1))
	f.Add(bytes.Replace(good, []byte(`"KB5044284"`), []byte(`"Mozilla.Firefox@132.0.1"`), 1))
	f.Add(bytes.Replace(good, []byte(`"updates": [`), []byte(`"updates": [null, `), 1))
	f.Add([]byte(`{"hostname": "WS-001", "os": {"family": "linux"}, "updates": []}`))
	f.Add([]byte(`{"hostname": "WS-001", "os": {"family": "linux"}, "updates": [{"id": "x", "source": "apt", "category": "bugfix", "released": "0000-01-01T00:00:00Z", "attempts": [{"result": "nope"}]}]}`))
	f.Add([]byte(`{"hostname": "WS-001", "os": {"family": "linux"}, "labels": {"": "x"}}`))
	f.Add([]byte(`{"hostname": 1e400}`))
	// Hostile endpoint text: terminal escapes, NUL, bidirectional
	// overrides, zero-width characters, Markdown that would break a table,
	// and times that overflow the store.
	f.Add(bytes.Replace(good, []byte(`"KB5044284"`), []byte(`"KB5044284\u001b]0;pwned\u0007"`), 1))
	f.Add(bytes.Replace(good, []byte(`"KB5044284"`), []byte(`"KB50\u000044284"`), 1))
	f.Add(bytes.Replace(good, []byte(`"KB5044284"`), []byte(`"KB5044284 |\n| **ok** <!--"`), 1))
	f.Add(bytes.Replace(good, []byte(`"WS-001"`), []byte(`"WS-\u202e100"`), 1))
	f.Add(bytes.Replace(good, []byte(`"hq"`), []byte(`"h\u200bq"`), 1))
	f.Add(bytes.Replace(good, []byte(`"2026-11-05T00:00:00Z"`), []byte(`"9999-12-31T00:00:00Z"`), 1))
	f.Add(bytes.Replace(good, []byte(`"CVE-2026-38063"`), []byte(`"=HYPERLINK(\"http://evil.example\")"`), 1))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))

	e := newEnv(f)
	a := e.enroll("WS-001")
	f.Fuzz(func(t *testing.T, body []byte) {
		before := stored(t, e)
		rec := serve(e, http.MethodPost, protocol.PathReport, body, a.auth())
		checkAnswer(t, e, rec, before, body)
		e.events.take()
	})
}

func FuzzResultHandler(f *testing.F) {
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "succeeded", "at": "2026-11-12T09:30:00Z"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "failed", "error": "exit 1603", "output": "..."}], "rebootPending": true}`))
	f.Add([]byte(`{"refused": true, "reason": "expired", "updates": []}`))
	f.Add([]byte(`{"refused": true, "updates": [{"update": "KB5044284", "result": ""}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB0000000", "result": "succeeded"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "maybe"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "succeeded", "at": "yesterday"}]}`))
	f.Add([]byte(`{"job": "another-job", "updates": []}`))
	f.Add([]byte(`{"updates": [{"update": ""}]}`))
	f.Add([]byte(`{"updates": null}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "succeeded"}, {"update": "KB5044284", "result": "failed"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "failed", "error": "exit 1\u001b]0;pwned\u0007", "output": "a\r\nb\u0000"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "failed", "error": "exit 100", "output": "E: 404\n\thttp://deb.debian.org/"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB\u202e4824405", "result": "succeeded"}]}`))
	f.Add([]byte(`{"updates": [{"update": "KB5044284", "result": "succeeded", "at": "9999-12-31T00:00:00Z"}]}`))
	f.Add([]byte(`{"refused": true, "reason": "expired\u001b[2J", "updates": []}`))
	f.Add([]byte(`{`))

	e := newEnv(f)
	a := e.enroll("WS-001")
	if resp := e.post(protocol.PathReport, reportFixture(f), a.auth()...); resp.status != 200 {
		f.Fatalf("report: %d %s", resp.status, resp.body)
	}
	// Each accepted result finishes the job; the next input gets a new one
	// so inputs keep exercising recording, not only duplicates.
	n := 0
	newJob := func(t testing.TB) store.Job {
		n++
		return e.createJobT(t, a, fmt.Sprint("key-", n), "KB5044284", "Mozilla.Firefox@132.0.1")
	}
	job := newJob(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := stored(t, e)
		rec := serve(e, http.MethodPost, protocol.ResultPath(job.ID), body, a.auth())
		checkAnswer(t, e, rec, before, body)
		if rec.Code == http.StatusOK {
			job = newJob(t)
		}
		e.events.take()
	})
}

func FuzzEnrollHandler(f *testing.F) {
	f.Add(jsonBytes(f, enrollRequest("acme", acmeSecret, "WS-001")))
	f.Add(jsonBytes(f, enrollRequest("acme", "guess", "WS-002")))
	f.Add(jsonBytes(f, enrollRequest("initech", acmeSecret, "WS-003")))
	f.Add(jsonBytes(f, enrollRequest("globex", globexSecret, "\x1b[31mWS|004\n")))
	f.Add([]byte(`{"client": "acme", "secret": "acme-enrollment-secret", "instanceId": "i", "nodeKey": "k", "hostname": "h"}`))
	f.Add([]byte(`{"client": "acme", "labels": {"": ""}}`))
	f.Add([]byte(`{"client": `))
	f.Add([]byte(`null`))
	f.Add([]byte(``))

	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		// Every input gets fresh budgets: the fuzzer exercises the
		// checks, not the rate limits.
		e.clock.Advance(time.Hour)
		before := stored(t, e)
		rec := serve(e, http.MethodPost, protocol.PathEnroll, body, nil)
		checkAnswer(t, e, rec, before, body)
		if rec.Code == http.StatusTooManyRequests {
			t.Fatalf("rate-limited with fresh budgets: %s", rec.Body)
		}
		e.events.take()
	})
}

// FuzzTokenCreateHandler: whatever the body of a token request, the
// answer is never a server error; a token is stored only when the answer
// is 201, and then with a valid name, known scopes, valid clients, never
// a client-limited backup or admin token, and only the hash of the secret
// it answered with.
func FuzzTokenCreateHandler(f *testing.F) {
	f.Add([]byte(`{"name": "ci-acme", "scopes": ["read"], "clients": ["acme", "globex"]}`))
	f.Add([]byte(`{"name": "ops", "scopes": ["admin"]}`))
	f.Add([]byte(`{"name": "nightly.backup_1", "scopes": ["backup", "read"]}`))
	f.Add([]byte(`{"name": "x", "scopes": ["backup"], "clients": ["acme"]}`))
	f.Add([]byte(`{"name": "CI", "scopes": ["read"]}`))
	f.Add([]byte(`{"name": "ci\u001b[2J", "scopes": ["read"]}`))
	f.Add([]byte(`{"name": "ci", "scopes": ["read", "read"]}`))
	f.Add([]byte(`{"name": "ci", "scopes": ["write"]}`))
	f.Add([]byte(`{"name": "ci", "scopes": ["read"], "clients": ["acme\u202e"]}`))
	f.Add([]byte(`{"name": "ci", "scopes": ["read"], "clients": [""]}`))
	f.Add([]byte(`{"name": "ci", "scopes": null}`))
	f.Add([]byte(`{"name": "ci", "scopes": ["read"], "secret": "mine"}`))
	f.Add([]byte(`{"name": 1e400}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))

	e := newEnv(f)
	count := func(t *testing.T) int {
		tokens, err := e.db.Tokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(tokens)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := count(t)
		rec := serve(e, http.MethodPost, protocol.PathTokens, body, []string{"Authorization", "Bearer " + adminToken})
		if rec.Code >= 500 {
			t.Fatalf("answer %d to %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusCreated {
			if after := count(t); after != before {
				t.Fatalf("a refused request (%d %s) stored a token", rec.Code, rec.Body)
			}
			return
		}
		var tc protocol.TokenCreated
		if err := json.Unmarshal(rec.Body.Bytes(), &tc); err != nil {
			t.Fatal(err)
		}
		tok := tc.Token
		if err := protocol.CheckTokenName(tok.Name); err != nil {
			t.Fatalf("accepted the name %q: %v", tok.Name, err)
		}
		for _, sc := range tok.Scopes {
			if !slices.Contains(protocol.Scopes, sc) || (len(tok.Clients) > 0 && sc != protocol.ScopeRead) {
				t.Fatalf("accepted scopes %q for clients %q", tok.Scopes, tok.Clients)
			}
		}
		for _, c := range tok.Clients {
			if err := protocol.CheckClientID(c); err != nil {
				t.Fatalf("accepted the client %q: %v", c, err)
			}
		}
		stored, err := e.db.Tokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256([]byte(tc.Secret))
		i := slices.IndexFunc(stored, func(s store.Token) bool { return s.Name == tok.Name })
		if i < 0 || !bytes.Equal(stored[i].Hash, want[:]) {
			t.Fatalf("token %q not stored with the hash of its secret", tok.Name)
		}
	})
}

// FuzzEnrollTokenCreateHandler: whatever the body of an enrollment token
// request, the answer is never a server error; a token is stored only
// when the answer is 201, and then with a valid name and client, labels
// an agent could report, a limit and an expiry in bounds, and only the
// hash of the secret it answered with.
func FuzzEnrollTokenCreateHandler(f *testing.F) {
	f.Add([]byte(`{"client": "acme", "name": "acme-pilot", "labels": {"ring": "pilot", "site": "hq"}, "expiresIn": "168h", "maxUses": 100}`))
	f.Add([]byte(`{"client": "acme"}`))
	f.Add([]byte(`{"client": "acme", "name": "42"}`))
	f.Add([]byte(`{"client": "Acme"}`))
	f.Add([]byte(`{"client": "acme", "labels": {"ring\u001b[2J": "x"}}`))
	f.Add([]byte(`{"client": "acme", "labels": {"": "x"}}`))
	f.Add([]byte(`{"client": "acme", "expiresIn": "-1h"}`))
	f.Add([]byte(`{"client": "acme", "expiresIn": "9999999h"}`))
	f.Add([]byte(`{"client": "acme", "maxUses": -5}`))
	f.Add([]byte(`{"client": "acme", "maxUses": 1e400}`))
	f.Add([]byte(`{"client": "acme", "secret": "mine"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))

	e := newEnv(f)
	count := func(t *testing.T) int {
		tokens, err := e.db.EnrollTokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(tokens)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := count(t)
		rec := serve(e, http.MethodPost, protocol.PathEnrollTokens, body, []string{"Authorization", "Bearer " + adminToken})
		if rec.Code >= 500 {
			t.Fatalf("answer %d to %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusCreated {
			if after := count(t); after != before {
				t.Fatalf("a refused request (%d %s) stored a token", rec.Code, rec.Body)
			}
			return
		}
		var tc protocol.EnrollTokenCreated
		if err := json.Unmarshal(rec.Body.Bytes(), &tc); err != nil {
			t.Fatal(err)
		}
		tok := tc.Token
		if err := protocol.CheckEnrollTokenName(tok.Name); err != nil {
			t.Fatalf("accepted the name %q: %v", tok.Name, err)
		}
		if err := protocol.CheckClientID(tok.Client); err != nil {
			t.Fatalf("accepted the client %q: %v", tok.Client, err)
		}
		if err := (&protocol.Endpoint{Labels: tok.Labels}).ValidateHost(); err != nil {
			t.Fatalf("accepted the labels %q: %v", tok.Labels, err)
		}
		if tok.MaxUses < 0 || tok.MaxUses > maxEnrollTokenUses || (!tok.ExpiresAt.IsZero() && tok.ExpiresAt.Sub(t0) > maxEnrollTokenLife) {
			t.Fatalf("accepted max uses %d and expiry %s", tok.MaxUses, tok.ExpiresAt)
		}
		stored, err := e.db.EnrollTokens(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(tc.Secret))
		found := false
		for _, s := range stored {
			if s.Name == tok.Name {
				found = bytes.Equal(s.Hash, h[:])
			}
		}
		if !found || !strings.HasPrefix(tc.Secret, protocol.EnrollTokenPrefix) {
			t.Fatalf("token %q is not stored as the hash of the secret answered", tok.Name)
		}
	})
}
