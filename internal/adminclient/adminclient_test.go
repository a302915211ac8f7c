package adminclient_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

// TestAgainstPatchd reads every admin route of a real patchd on loopback.
func TestAgainstPatchd(t *testing.T) {
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("../../reconciler/testdata/fleet")
	head := up.Commit("Start the fleet").String()
	pd := patchdtest.Start(t, patchdtest.Config(t, up.Work, map[string]string{"acme": "acme-enrollment-secret-0123456789"}))
	ctx := context.Background()
	c := &adminclient.Client{Base: pd.URL, Token: patchdtest.AdminToken}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != head {
		t.Errorf("status head %q, want %s", st.Head, head)
	}
	snap, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.APIVersion != protocol.SnapshotAPIVersion {
		t.Errorf("state apiVersion %q", snap.APIVersion)
	}
	entries, err := c.AuditAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, e := range entries {
		if e.Kind == protocol.AuditRevisionApplied {
			applied++
		}
	}
	if applied == 0 {
		t.Errorf("audit log %+v has no applied revision", entries)
	}
	body, err := c.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head16 := make([]byte, 16)
	if _, err := io.ReadFull(body, head16); err != nil || string(head16) != "SQLite format 3\x00" {
		t.Errorf("backup starts with %q (%v), want an SQLite file", head16, err)
	}
	body.Close()

	wrong := &adminclient.Client{Base: pd.URL, Token: "not-the-token"}
	if _, err := wrong.Status(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token: error %v, want the controller's 401 and its message", err)
	}
	bad := &adminclient.Client{Base: "patchd:8420", Token: patchdtest.AdminToken}
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Errorf("a URL without scheme: error %v, want one showing the expected form", err)
	}
}

// TestTokensAndEndpointsAgainstPatchd: tokens are created, used, listed
// and revoked, and endpoints listed, revoked and deleted, on a real
// patchd on loopback.
func TestTokensAndEndpointsAgainstPatchd(t *testing.T) {
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("../../reconciler/testdata/fleet")
	up.Commit("Start the fleet")
	const secret = "acme-enrollment-secret-0123456789"
	pd := patchdtest.Start(t, patchdtest.Config(t, up.Work, map[string]string{"acme": secret}))
	ctx := context.Background()
	admin := &adminclient.Client{Base: pd.URL, Token: patchdtest.AdminToken}

	var ids []string
	for _, host := range []string{"ACME-WS-1", "ACME-WS-2"} {
		var er protocol.EnrollResponse
		req := protocol.EnrollRequest{Client: "acme", Secret: secret, InstanceID: "instance-" + host,
			NodeKey: "node-key-of-" + host + "-0123456789abcdefghijkl", Hostname: host, OS: protocol.OS{Family: "linux"}}
		if code, body := apitest.Do(t, pd.URL, "POST", protocol.PathEnroll, nil, req, &er); code != 200 {
			t.Fatalf("enroll %s: %d %s", host, code, body)
		}
		ids = append(ids, er.Endpoint)
	}

	created, err := admin.CreateToken(ctx, protocol.TokenRequest{Name: "ci-acme", Scopes: []protocol.Scope{protocol.ScopeRead}, Clients: []string{"acme"}})
	if err != nil {
		t.Fatal(err)
	}
	ci := &adminclient.Client{Base: pd.URL, Token: created.Secret}
	eps, err := ci.Endpoints(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].ID != ids[0] || eps[1].Hostname != "ACME-WS-2" {
		t.Errorf("endpoints %+v, want %v", eps, ids)
	}
	if _, err := ci.Endpoints(ctx, "globex"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("the acme token listing globex: %v, want a 403", err)
	}
	if _, err := ci.RevokeEndpoint(ctx, ids[0]); err == nil || !strings.Contains(err.Error(), "needs the admin scope") {
		t.Errorf("a read token revoking an endpoint: %v, want a 403 naming the admin scope", err)
	}

	revoked, err := admin.RevokeEndpoint(ctx, ids[0])
	if err != nil || revoked.RevokedAt.IsZero() || revoked.RevokedBy != protocol.BootstrapTokenName {
		t.Errorf("revoke: %+v, %v", revoked, err)
	}
	deleted, err := admin.DeleteEndpoint(ctx, ids[1])
	if err != nil || deleted.ID != ids[1] {
		t.Errorf("delete: %+v, %v", deleted, err)
	}
	if eps, err := admin.Endpoints(ctx, ""); err != nil || len(eps) != 1 || eps[0].ID != ids[0] || eps[0].RevokedAt.IsZero() {
		t.Errorf("endpoints after revoking one and deleting the other: %+v, %v", eps, err)
	}
	if _, err := admin.DeleteEndpoint(ctx, "no/such endpoint"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("deleting an unknown endpoint: %v, want a 404", err)
	}

	tokens, err := admin.Tokens(ctx)
	if err != nil || len(tokens) != 1 || tokens[0].Name != "ci-acme" || tokens[0].LastUsed.IsZero() {
		t.Errorf("tokens %+v, %v: want ci-acme, used", tokens, err)
	}
	if _, err := admin.RevokeToken(ctx, "ci-acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := ci.Status(ctx); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("the revoked token: %v, want a 401 saying it is revoked", err)
	}
}
