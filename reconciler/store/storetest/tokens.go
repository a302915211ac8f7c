package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// testTokens: a token is stored with its hash, listed with its scopes and
// clients, revoked once, and its name is never given again; the audit log
// says who created and revoked it, without its hash.
func testTokens(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	hash := sha256.Sum256([]byte("plt_secret-of-ci"))
	ci := store.Token{
		Name: "ci-acme", Hash: hash[:], Scopes: []protocol.Scope{protocol.ScopeRead}, Clients: []string{"acme", "globex"},
		CreatedAt: t0, CreatedBy: protocol.BootstrapTokenName,
	}
	if err := db.CreateToken(ctx, ci); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("plt_other"))
	backup := store.Token{Name: "backup", Hash: other[:], Scopes: []protocol.Scope{protocol.ScopeBackup, protocol.ScopeRead}, CreatedAt: t0, CreatedBy: "ci-acme"}
	if err := db.CreateToken(ctx, backup); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    store.Token
		want error
	}{
		{"a name taken", store.Token{Name: "ci-acme", Hash: make([]byte, 32), Scopes: ci.Scopes, CreatedAt: t0}, store.ErrConflict},
		{"a hash another token has", store.Token{Name: "ci-2", Hash: hash[:], Scopes: ci.Scopes, CreatedAt: t0}, store.ErrConflict},
		{"no hash", store.Token{Name: "x", Scopes: ci.Scopes, CreatedAt: t0}, store.ErrInvalid},
		{"a hash that is no SHA-256", store.Token{Name: "x", Hash: []byte("short"), Scopes: ci.Scopes, CreatedAt: t0}, store.ErrInvalid},
		{"no scope", store.Token{Name: "x", Hash: make([]byte, 32), CreatedAt: t0}, store.ErrInvalid},
		{"no creation time", store.Token{Name: "x", Hash: make([]byte, 32), Scopes: ci.Scopes}, store.ErrInvalid},
	} {
		if err := db.CreateToken(ctx, tc.t); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	used := t0.Add(3 * time.Minute)
	for _, at := range []time.Time{used, t0.Add(time.Minute)} { // a late write of an older use loses
		if err := db.TokenUsed(ctx, "ci-acme", at); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.TokenUsed(ctx, "nobody", used); err != nil {
		t.Errorf("use of an unknown token: %v, want nothing recorded and no error", err)
	}
	revokedAt := t0.Add(time.Hour)
	revoked, err := db.RevokeToken(ctx, "ci-acme", "ops", revokedAt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(revoked.Hash, hash[:]) || !revoked.RevokedAt.Equal(revokedAt) || revoked.RevokedBy != "ops" {
		t.Errorf("revoked token %+v", revoked)
	}
	if _, err := db.RevokeToken(ctx, "ci-acme", "ops", revokedAt); !errors.Is(err, store.ErrConflict) {
		t.Errorf("revoking twice: %v, want a conflict", err)
	}
	if _, err := db.RevokeToken(ctx, "nobody", "ops", revokedAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown token: %v, want not found", err)
	}
	if err := db.CreateToken(ctx, store.Token{Name: "ci-acme", Hash: make([]byte, 32), Scopes: ci.Scopes, CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a revoked token's name given again: %v, want a conflict", err)
	}

	got, err := db.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ci.LastUsed, ci.RevokedAt, ci.RevokedBy = used, revokedAt, "ops"
	if diff := cmp.Diff([]store.Token{backup, ci}, got, equateEmpty); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}

	var details []string
	for _, e := range auditOf(t, db) {
		details = append(details, string(e.Kind)+" "+string(e.Detail))
	}
	want := []string{
		`token-created {"token":"ci-acme","scopes":["read"],"clients":["acme","globex"],"by":"adminToken"}`,
		`token-created {"token":"backup","scopes":["backup","read"],"by":"ci-acme"}`,
		`token-revoked {"token":"ci-acme","scopes":["read"],"clients":["acme","globex"],"by":"ops"}`,
	}
	if diff := cmp.Diff(want, details); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	if all := strings.Join(details, "\n"); strings.Contains(all, string(hash[:])) {
		t.Error("the audit log holds a token's hash")
	}
}
