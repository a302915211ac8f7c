package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	first := enrollRequest("acme", acmeSecret, "WS-001.corp.example")
	wantID := endpointID("acme", first.Hostname, first.InstanceID)

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
			wantID:     endpointID("globex", globex.Hostname, globex.InstanceID),
			wantEvents: []string{"enrolled globex " + endpointID("globex", globex.Hostname, globex.InstanceID)}},
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

func TestEnrollSameHostnameOtherInstance(t *testing.T) {
	e := newEnv(t)
	a := enrollRequest("acme", acmeSecret, "ws-001")
	// Find a second instance id whose hash starts like the first's, as a
	// re-imaged machine with the same name would by bad luck.
	b := a
	b.NodeKey = "node-key-of-the-reimaged-machine-0123456789"
	base := endpointID("acme", a.Hostname, a.InstanceID)
	for i := 0; ; i++ {
		b.InstanceID = fmt.Sprintf("instance-%d", i)
		if endpointID("acme", b.Hostname, b.InstanceID) == base {
			break
		}
	}
	for _, tc := range []struct {
		req  protocol.EnrollRequest
		want string
	}{{a, base}, {b, base + "-2"}, {b, base + "-2"}, {a, base}} {
		resp := e.post(protocol.PathEnroll, tc.req)
		var er protocol.EnrollResponse
		if err := json.Unmarshal(resp.body, &er); err != nil || resp.status != 200 {
			t.Fatalf("enroll %s: %d %s", tc.req.InstanceID, resp.status, resp.body)
		}
		if er.Endpoint != tc.want {
			t.Errorf("instance %s enrolled as %q, want %q", tc.req.InstanceID, er.Endpoint, tc.want)
		}
	}
}

func TestEndpointID(t *testing.T) {
	suffix := endpointID("acme", "x", "instance-1")[len("acme-x-"):]
	tests := []struct {
		name, hostname, want string
	}{
		{"upper case NetBIOS name", "WS-001", "acme-ws-001-"},
		{"fully qualified name", "ws-001.corp.example.com", "acme-ws-001-corp-example-com-"},
		{"spaces and symbols", "  Reception PC (front desk) ", "acme-reception-pc-front-desk-"},
		{"nothing usable", "___", "acme-host-"},
		{"very long name", strings.Repeat("a", 100), "acme-" + strings.Repeat("a", maxHostPart) + "-"},
	}
	for _, tt := range tests {
		if got := endpointID("acme", tt.hostname, "instance-1"); got != tt.want+suffix {
			t.Errorf("%s: endpointID(%q) = %q, want %q", tt.name, tt.hostname, got, tt.want+suffix)
		}
	}
}

func TestEnrollRateLimit(t *testing.T) {
	e := newEnv(t)
	e.api.enrolls = newTokenBucket(2, 1, e.clock.Now)
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
