package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	first := enrollRequest("acme", acmeSecret, "WS-001.corp.example")
	wantID := "acme-ws-001-corp-example"

	otherKey := first
	otherKey.NodeKey = "a-different-node-key-0123456789abcdefgh"
	crossClient := enrollRequest("acme", globexSecret, "WS-002")
	unknownClient := enrollRequest("initech", acmeSecret, "WS-003")
	wrongSecret := enrollRequest("acme", "guess", "WS-004")
	globex := enrollRequest("globex", globexSecret, "gx-laptop-7")
	shortKey := enrollRequest("acme", acmeSecret, "WS-005")
	shortKey.NodeKey = "short"
	noHost := enrollRequest("acme", acmeSecret, "")

	tests := []struct {
		name       string
		req        any
		wantStatus int
		wantCode   protocol.Code
		wantID     string
		wantEvents []string
	}{
		{name: "new endpoint enrolls", req: first, wantStatus: 200, wantID: wantID,
			wantEvents: []string{"enrolled acme " + wantID}},
		{name: "retried enrollment gets the same endpoint", req: first, wantStatus: 200, wantID: wantID},
		{name: "same instance with another node key", req: otherKey, wantStatus: 409, wantCode: protocol.CodeConflict},
		{name: "another client's secret", req: crossClient, wantStatus: 401, wantCode: protocol.CodeUnauthorized},
		{name: "client without an enrollment secret", req: unknownClient, wantStatus: 401, wantCode: protocol.CodeUnauthorized},
		{name: "wrong secret", req: wrongSecret, wantStatus: 401, wantCode: protocol.CodeUnauthorized},
		{name: "client whose secret is given pre-hashed", req: globex, wantStatus: 200,
			wantID:     "globex-gx-laptop-7",
			wantEvents: []string{"enrolled globex globex-gx-laptop-7"}},
		{name: "node key too short to be secret", req: shortKey, wantStatus: 400, wantCode: protocol.CodeInvalid},
		{name: "no hostname", req: noHost, wantStatus: 400, wantCode: protocol.CodeInvalid},
		{name: "unknown field", req: `{"client": "acme", "secrt": "x"}`, wantStatus: 400, wantCode: protocol.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.post(protocol.PathEnroll, tt.req)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus != 200 {
				if got := resp.errorBody(t).Code; got != tt.wantCode {
					t.Errorf("code %q, want %q", got, tt.wantCode)
				}
			} else {
				var er protocol.EnrollResponse
				if err := json.Unmarshal(resp.body, &er); err != nil {
					t.Fatal(err)
				}
				if er.Endpoint != tt.wantID {
					t.Errorf("endpoint %q, want %q", er.Endpoint, tt.wantID)
				}
				if !ed25519.PublicKey(er.SigningKey).Equal(e.key.Public()) {
					t.Error("enrollment did not return the controller's signing key")
				}
			}
			if diff := cmp.Diff(tt.wantEvents, e.events.take()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("only the node key's hash is stored", func(t *testing.T) {
		ep, err := e.db.EndpointByID(context.Background(), wantID)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ep.NodeKeyHash, []byte(first.NodeKey)) {
			t.Error("the node key is stored in the clear")
		}
		h := sha256.Sum256([]byte(first.NodeKey))
		if !bytes.Contains(ep.NodeKeyHash, h[:]) {
			t.Error("the stored credential does not hold the node key's hash")
		}
	})
}

// TestEnrollIDCollisions: an endpoint id is "<client>-<host>" until
// another endpoint holds it; then the instance's hashed suffix, then that
// with -2. Every retry of an enrollment gets its endpoint back.
func TestEnrollIDCollisions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	enroll := func(host, instance string) protocol.EnrollRequest {
		req := enrollRequest("acme", acmeSecret, host)
		req.InstanceID, req.NodeKey = instance, "node-key-of-"+instance+"-0123456789abcdefghijklmnop"
		return req
	}
	first := enroll("WS-04", "instance-first")
	reimaged := enroll("ws-04", "instance-reimaged")
	// An instance whose hash starts like the re-imaged one's, as a third
	// machine named ws-04 would by bad luck.
	unlucky := enroll("ws-04", "")
	for i := 0; ; i++ {
		unlucky.InstanceID = fmt.Sprintf("instance-%d", i)
		if instanceHash(unlucky.InstanceID) == instanceHash(reimaged.InstanceID) {
			break
		}
	}
	unlucky.NodeKey = "node-key-of-the-unlucky-one-0123456789abcdef"
	hashed := "acme-ws-04-" + instanceHash(reimaged.InstanceID)
	doubled := enroll("ACME-SQL01.corp.example", "instance-sql")
	legacy := enroll("ACME-SQL02", "instance-before-the-upgrade")
	otherClients := enroll("ws-09", "instance-ws-09")

	// Endpoints as earlier controllers or other clients left them.
	for _, ep := range []store.Enrollment{
		{ID: legacyEndpointID("acme", legacy.Hostname, legacy.InstanceID), Client: "acme", Hostname: legacy.Hostname,
			NodeKeyHash: credential(legacy.InstanceID, legacy.NodeKey), EnrolledAt: t0},
		{ID: "acme-ws-09", Client: "acme-eu", Hostname: "ws-09", NodeKeyHash: credential("instance-ws-09", "k"), EnrolledAt: t0},
	} {
		if err := e.db.Enroll(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name   string
		before func(t *testing.T)
		req    protocol.EnrollRequest
		want   string
	}{
		{name: "the first machine named WS-04", req: first, want: "acme-ws-04"},
		{name: "its retry", req: first, want: "acme-ws-04"},
		{name: "a re-imaged machine with the same name", req: reimaged, want: hashed},
		{name: "the re-imaged machine's retry", req: reimaged, want: hashed},
		{name: "a third ws-04 whose hash collides", req: unlucky, want: hashed + "-2"},
		{name: "the third one's retry", req: unlucky, want: hashed + "-2"},
		{name: "the first one's retry, still", req: first, want: "acme-ws-04"},
		{name: "a hostname that starts with the client id", req: doubled, want: "acme-sql01-corp-example"},
		{name: "an agent enrolled by an older controller retries", req: legacy,
			want: legacyEndpointID("acme", legacy.Hostname, legacy.InstanceID)},
		{name: "another client's endpoint holds the id", req: otherClients, want: "acme-ws-09-" + instanceHash(otherClients.InstanceID)},
		{name: "the first machine enrolls again once revoked", req: first, want: "acme-ws-04-" + instanceHash(first.InstanceID),
			before: func(t *testing.T) {
				if _, err := e.db.RevokeEndpoint(ctx, "acme-ws-04", "admin", t0); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			e.clock.Advance(time.Hour) // fresh enrollment budgets
			resp := e.post(protocol.PathEnroll, tt.req)
			var er protocol.EnrollResponse
			if err := json.Unmarshal(resp.body, &er); err != nil || resp.status != 200 {
				t.Fatalf("enroll %s: %d %s", tt.req.InstanceID, resp.status, resp.body)
			}
			if er.Endpoint != tt.want {
				t.Errorf("instance %s enrolled as %q, want %q", tt.req.InstanceID, er.Endpoint, tt.want)
			}
			e.events.take()
		})
	}
}

func TestEndpointID(t *testing.T) {
	tests := []struct {
		name, client, hostname, want string
	}{
		{"upper case NetBIOS name", "acme", "WS-001", "acme-ws-001"},
		{"fully qualified name", "acme", "ws-001.corp.example.com", "acme-ws-001-corp-example-com"},
		{"hostname that starts with the client id", "acme", "ACME-WS-04", "acme-ws-04"},
		{"client id then a dot", "acme", "acme.ws04", "acme-ws04"},
		{"hostname that is the client id", "acme", "ACME", "acme-acme"},
		{"client id inside the name, not in front", "acme", "ws-acme-1", "acme-ws-acme-1"},
		{"client id with a longer word in front", "acme", "acmecorp-ws1", "acme-acmecorp-ws1"},
		{"client id with a dot", "acme.eu", "acme.eu-ws1", "acme.eu-acme-eu-ws1"},
		{"spaces and symbols", "acme", "  Reception PC (front desk) ", "acme-reception-pc-front-desk"},
		{"letters outside a-z", "acme", "Büro-PC", "acme-b-ro-pc"},
		{"control and bidi characters", "acme", "ws\x1b[31m-01\u202e", "acme-ws-31m-01"},
		{"nothing usable", "acme", "___", "acme-host"},
		{"very long name", "acme", strings.Repeat("a", 100), "acme-" + strings.Repeat("a", maxHostPart)},
		{"long name cut before a dash", "acme", strings.Repeat("a", maxHostPart-1) + "-bc", "acme-" + strings.Repeat("a", maxHostPart-1)},
	}
	for _, tt := range tests {
		if got := endpointID(tt.client, tt.hostname); got != tt.want {
			t.Errorf("%s: endpointID(%q, %q) = %q, want %q", tt.name, tt.client, tt.hostname, got, tt.want)
		}
	}
}

// FuzzEndpointID: whatever an endpoint calls itself, its ids are ids by
// the API's rule, start with its client's id and a dash, and are short.
func FuzzEndpointID(f *testing.F) {
	for _, h := range []string{"WS-001", "acme-ws-04", "\x1b]0;x\x07", "Büro", "", "-", "acme", "acme-"} {
		f.Add(h, "instance-1")
	}
	f.Fuzz(func(t *testing.T, hostname, instance string) {
		for _, id := range append(candidates("acme", hostname, instance)[:3], legacyEndpointID("acme", hostname, instance)) {
			if err := protocol.CheckClientID(id); err != nil {
				t.Fatalf("hostname %q gives id %q: %v", hostname, id, err)
			}
			if !strings.HasPrefix(id, "acme-") || strings.Contains(id, "--") || strings.HasSuffix(id, "-") {
				t.Errorf("hostname %q gives id %q", hostname, id)
			}
			if len(id) > len("acme-")+maxHostPart+len("-xxxx-100") {
				t.Errorf("hostname %q gives an id of %d bytes", hostname, len(id))
			}
		}
	})
}

// enrollStep is one enrollment of a limits test: from a loopback address,
// into a client with a secret, and the status it must get.
type enrollStep struct {
	from, client, secret string
	wantStatus           int
}

// TestEnrollLimits: an enrollment takes from its address's budget (a
// wrong secret too), then its client's, then the controller's; each
// refusal is counted by reason.
func TestEnrollLimits(t *testing.T) {
	const (
		a, b, c, d = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
	)
	tests := []struct {
		name string
		// budget sets the bucket under test to two enrollments, no refill.
		budget func(e *env)
		steps  []enrollStep
		want   map[string]float64 // failures by reason
	}{
		{
			name:   "wrong secrets spend their address's budget only",
			budget: func(e *env) { e.api.enrolls.byAddr = newKeyedBuckets[netip.Addr](2, 0.001, 10, e.clock.Now) },
			steps: []enrollStep{
				{a, "acme", "guess-1", 401},
				{a, "initech", "guess-2", 401},
				{a, "acme", "guess-3", 429},
				{a, "acme", acmeSecret, 429}, // a right guess looks the same once the budget is spent
				{b, "acme", acmeSecret, 200},
			},
			want: map[string]float64{reasonBadSecret: 1, reasonUnknownClient: 1, reasonAddressLimit: 2},
		},
		{
			name:   "one client's enrollments spend its budget only",
			budget: func(e *env) { e.api.enrolls.byClient = newKeyedBuckets[string](2, 0.001, 10, e.clock.Now) },
			steps: []enrollStep{
				{a, "acme", acmeSecret, 200},
				{b, "acme", acmeSecret, 200},
				{c, "acme", acmeSecret, 429},
				{c, "globex", globexSecret, 200},
			},
			want: map[string]float64{reasonClientLimit: 1},
		},
		{
			name:   "the controller's budget comes last, and a wrong secret never reaches it",
			budget: func(e *env) { e.api.enrolls.global = newTokenBucket(2, 0.001, e.clock.Now) },
			steps: []enrollStep{
				{a, "acme", "guess", 401},
				{a, "acme", acmeSecret, 200},
				{b, "globex", globexSecret, 200},
				{c, "acme", acmeSecret, 429},
				{d, "globex", "guess", 401},
			},
			want: map[string]float64{reasonBadSecret: 2, reasonGlobalLimit: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.budget(e)
			clients := map[string]*http.Client{}
			for i, st := range tt.steps {
				if clients[st.from] == nil {
					clients[st.from] = e.clientFrom(st.from)
				}
				resp := e.postFrom(clients[st.from], e.srv, protocol.PathEnroll, enrollRequest(st.client, st.secret, fmt.Sprint("ws-", i)))
				if resp.status != st.wantStatus {
					t.Fatalf("step %d (%s %s from %s): %d %s, want %d", i, st.client, st.secret, st.from, resp.status, resp.body, st.wantStatus)
				}
				if resp.status == http.StatusTooManyRequests && resp.header.Get("Retry-After") == "" {
					t.Errorf("step %d: 429 without Retry-After", i)
				}
			}
			if diff := cmp.Diff(tt.want, e.enrollFailures()); diff != "" {
				t.Errorf("enrollment failures (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEnrollBudgetRefills: a spent budget refills with time, and the
// answer says when.
func TestEnrollBudgetRefills(t *testing.T) {
	e := newEnv(t)
	e.api.enrolls.global = newTokenBucket(2, 1, e.clock.Now)
	for i := range 2 {
		if resp := e.post(protocol.PathEnroll, enrollRequest("acme", acmeSecret, fmt.Sprint("ws-", i))); resp.status != 200 {
			t.Fatalf("enrollment %d: %d %s", i, resp.status, resp.body)
		}
	}
	resp := e.post(protocol.PathEnroll, enrollRequest("acme", acmeSecret, "ws-2"))
	if resp.status != http.StatusTooManyRequests || resp.errorBody(t).Code != protocol.CodeRateLimited {
		t.Fatalf("third enrollment in a burst of two: %d %s", resp.status, resp.body)
	}
	if got := resp.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1", got)
	}
	e.clock.Advance(time.Second)
	if resp := e.post(protocol.PathEnroll, enrollRequest("acme", acmeSecret, "ws-2")); resp.status != 200 {
		t.Fatalf("enrollment after the bucket refilled: %d %s", resp.status, resp.body)
	}
}

// TestEnrollRefusesHostileHostFacts: an endpoint enrolls with the hostname
// and labels its reports will carry, by the same rules of endpoint text.
func TestEnrollRefusesHostileHostFacts(t *testing.T) {
	e := newEnv(t)
	withLabels := func(labels map[string]string) protocol.EnrollRequest {
		req := enrollRequest("acme", acmeSecret, "WS-010")
		req.Labels = labels
		return req
	}
	tests := []struct {
		name string
		req  protocol.EnrollRequest
		want string
	}{
		{"terminal escape in the hostname", enrollRequest("acme", acmeSecret, "WS-001\x1b]0;pwned\x07"),
			"hostname: control character U+001B at byte 6"},
		{"NUL in the hostname", enrollRequest("acme", acmeSecret, "WS\x00-001"),
			"hostname: control character U+0000 at byte 2"},
		{"right-to-left override in the hostname", enrollRequest("acme", acmeSecret, "WS-\u202e100"),
			"hostname: invisible format character U+202E at byte 3"},
		{"newline in a label value", withLabels(map[string]string{"ring": "canary\n| x |"}),
			`labels["ring"]: control character U+000A at byte 6`},
		{"zero-width space in a label key", withLabels(map[string]string{"ri\u200bng": "canary"}),
			`labels: key "ri\u200bng": invisible format character U+200B at byte 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.post(protocol.PathEnroll, tt.req)
			if resp.status != 400 {
				t.Fatalf("status %d, want 400: %s", resp.status, resp.body)
			}
			if msg := resp.errorBody(t).Message; msg != tt.want {
				t.Errorf("message %q, want %q", msg, tt.want)
			}
			if ev := e.events.take(); len(ev) != 0 {
				t.Errorf("a refused enrollment raised events %v", ev)
			}
		})
	}
}

// TestEnrollFloodFromOneAddress: many goroutines send garbage enrollments
// (wrong secrets, malformed bodies) from one address for two seconds;
// enrollments from other addresses keep succeeding meanwhile, and the
// garbage is counted.
func TestEnrollFloodFromOneAddress(t *testing.T) {
	e := newEnv(t)
	flooder := e.clientFrom("127.0.0.2")
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards codes
	codes := map[int]int{}
	for g := range 32 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				body := jsonBytes(t, enrollRequest("acme", fmt.Sprintf("guess-%d-%d", g, n), fmt.Sprintf("flood-%d-%d", g, n)))
				if n%4 == 3 {
					body = []byte(`{"client": "acme", "secret": `)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+protocol.PathEnroll, bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := flooder.Do(req)
				if err != nil {
					continue // the flood's end cancelled it
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	legit := e.clientFrom("127.0.0.3")
	for i := 0; ctx.Err() == nil; i++ {
		resp := e.postFrom(legit, e.srv, protocol.PathEnroll, enrollRequest("acme", acmeSecret, fmt.Sprint("ws-", i)))
		if resp.status != http.StatusOK {
			t.Errorf("enrollment %d from another address during the flood: %d %s", i, resp.status, resp.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("flood answers: %v", codes)
	for code := range codes {
		if code != 400 && code != 401 && code != 429 {
			t.Errorf("the flood got %d %d times; want only 400, 401 and 429", code, codes[code])
		}
	}
	got := e.enrollFailures()
	for _, reason := range []string{reasonBadSecret, reasonMalformed, reasonAddressLimit} {
		if got[reason] == 0 {
			t.Errorf("no enrollment failure counted as %s: %v", reason, got)
		}
	}
}

// enrollFailures reads patchline_enroll_failures_total by reason, leaving
// out the reasons at zero.
func (e *env) enrollFailures() map[string]float64 {
	e.t.Helper()
	got := map[string]float64{}
	for _, reason := range enrollFailureReasons {
		if v := testutil.ToFloat64(e.api.refusals.enroll.WithLabelValues(reason)); v > 0 {
			got[reason] = v
		}
	}
	return got
}
