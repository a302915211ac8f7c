package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/reconciler/store"
)

// enrollTokenStore is how the API keeps enrollment tokens.
type enrollTokenStore interface {
	CreateEnrollToken(ctx context.Context, t store.EnrollToken) (store.EnrollToken, error)
	EnrollTokens(ctx context.Context) ([]store.EnrollToken, error)
	EnrollTokenByHash(ctx context.Context, hash []byte) (store.EnrollToken, error)
	RevokeEnrollToken(ctx context.Context, id int64, by string, at time.Time) (store.EnrollToken, error)
}

// newEnrollToken is a token of client named name, created at t0, whose
// secret is "ple_" and its name.
func newEnrollToken(name, client string) store.EnrollToken {
	h := sha256.Sum256([]byte("ple_" + name))
	return store.EnrollToken{Name: name, Client: client, Hash: h[:], CreatedAt: t0, CreatedBy: "ops"}
}

// testEnrollTokens: an enrollment token is stored with its hash, labels,
// expiry and limit, found by its hash, listed by id, revoked once, and
// its name is never given again; the audit log names it, never its hash.
func testEnrollTokens(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	pilot := newEnrollToken("acme-pilot", "acme")
	pilot.Labels = map[string]string{"ring": "pilot", "site": "hq"}
	pilot.ExpiresAt, pilot.MaxUses = t0.Add(7*24*time.Hour), 100
	created, err := db.CreateEnrollToken(ctx, pilot)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID <= 0 {
		t.Fatalf("created token has id %d, want a positive id", created.ID)
	}
	pilot.ID = created.ID
	if diff := cmp.Diff(pilot, created, equateEmpty); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	plain, err := db.CreateEnrollToken(ctx, newEnrollToken("globex-1", "globex"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.ID <= pilot.ID {
		t.Errorf("second token's id %d is not above the first's %d", plain.ID, pilot.ID)
	}
	for _, tc := range []struct {
		name string
		t    store.EnrollToken
		want error
	}{
		{"a name taken", func() store.EnrollToken { x := newEnrollToken("other", "acme"); x.Name = "acme-pilot"; return x }(), store.ErrConflict},
		{"a hash another token has", func() store.EnrollToken { x := newEnrollToken("acme-pilot", "acme"); x.Name = "copy"; return x }(), store.ErrConflict},
		{"no name", store.EnrollToken{Client: "acme", Hash: make([]byte, 32), CreatedAt: t0}, store.ErrInvalid},
		{"no client", store.EnrollToken{Name: "x", Hash: make([]byte, 32), CreatedAt: t0}, store.ErrInvalid},
		{"a hash that is no SHA-256", store.EnrollToken{Name: "x", Client: "acme", Hash: []byte("short"), CreatedAt: t0}, store.ErrInvalid},
		{"no creation time", store.EnrollToken{Name: "x", Client: "acme", Hash: make([]byte, 32)}, store.ErrInvalid},
		{"negative uses", store.EnrollToken{Name: "x", Client: "acme", Hash: make([]byte, 32), CreatedAt: t0, MaxUses: -1}, store.ErrInvalid},
	} {
		if _, err := db.CreateEnrollToken(ctx, tc.t); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	h := sha256.Sum256([]byte("ple_acme-pilot"))
	if got, err := db.EnrollTokenByHash(ctx, h[:]); err != nil || got.Name != "acme-pilot" || got.Labels["ring"] != "pilot" {
		t.Errorf("EnrollTokenByHash = %+v, %v; want acme-pilot", got, err)
	}
	unknown := sha256.Sum256([]byte("ple_nobody"))
	if _, err := db.EnrollTokenByHash(ctx, unknown[:]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EnrollTokenByHash of an unknown secret: %v, want not found", err)
	}

	revokedAt := t0.Add(time.Hour)
	revoked, err := db.RevokeEnrollToken(ctx, plain.ID, "ops", revokedAt)
	if err != nil {
		t.Fatal(err)
	}
	if !revoked.RevokedAt.Equal(revokedAt) || revoked.RevokedBy != "ops" || revoked.Name != "globex-1" {
		t.Errorf("revoked token %+v", revoked)
	}
	if _, err := db.RevokeEnrollToken(ctx, plain.ID, "ops", revokedAt); !errors.Is(err, store.ErrConflict) {
		t.Errorf("revoking twice: %v, want a conflict", err)
	}
	if _, err := db.RevokeEnrollToken(ctx, 9999, "ops", revokedAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown token: %v, want not found", err)
	}
	if _, err := db.CreateEnrollToken(ctx, func() store.EnrollToken { x := newEnrollToken("new", "globex"); x.Name = "globex-1"; return x }()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a revoked token's name given again: %v, want a conflict", err)
	}

	got, err := db.EnrollTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plain.RevokedAt, plain.RevokedBy = revokedAt, "ops"
	if diff := cmp.Diff([]store.EnrollToken{pilot, plain}, got, equateEmpty); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}

	var details []string
	for _, e := range auditOf(t, db) {
		details = append(details, string(e.Kind)+" "+e.Client+" "+string(e.Detail))
	}
	want := []string{
		fmt.Sprintf(`enroll-token-created acme {"id":%d,"token":"acme-pilot","labels":{"ring":"pilot","site":"hq"},"expiresAt":"2026-03-17T09:00:00Z","maxUses":100,"uses":0,"by":"ops"}`, pilot.ID),
		fmt.Sprintf(`enroll-token-created globex {"id":%d,"token":"globex-1","uses":0,"by":"ops"}`, plain.ID),
		fmt.Sprintf(`enroll-token-revoked globex {"id":%d,"token":"globex-1","uses":0,"by":"ops"}`, plain.ID),
	}
	if diff := cmp.Diff(want, details); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	if all := strings.Join(details, "\n"); strings.Contains(all, string(h[:])) {
		t.Error("the audit log holds a token's hash")
	}
}

// testEnrollWithToken: enrolling with a token counts one use in the
// enrollment's transaction and gives the endpoint the token's labels; a
// token of another client, revoked, expired or used up enrolls nothing
// and counts nothing.
func testEnrollWithToken(t *testing.T, s *suite) {
	ctx := context.Background()
	db := s.open(t)
	tok := newEnrollToken("acme-pilot", "acme")
	tok.Labels = map[string]string{"ring": "pilot"}
	tok.ExpiresAt, tok.MaxUses = t0.Add(24*time.Hour), 2
	tok, err := db.CreateEnrollToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := db.CreateEnrollToken(ctx, newEnrollToken("acme-old", "acme"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeEnrollToken(ctx, revoked.ID, "ops", t0); err != nil {
		t.Fatal(err)
	}
	ep := func(id, client string, token int64, at time.Time) store.Enrollment {
		return store.Enrollment{ID: id, Client: client, Hostname: id, NodeKeyHash: []byte("key-" + id), EnrolledAt: at,
			Token: token, Labels: map[string]string{"ring": "pilot"}}
	}
	if err := db.Enroll(ctx, ep("ep-1", "acme", tok.ID, t0)); err != nil {
		t.Fatal(err)
	}
	got, err := db.EndpointByID(ctx, "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ep("ep-1", "acme", tok.ID, t0), got); diff != "" {
		t.Errorf("EndpointByID (-want +got):\n%s", diff)
	}
	if snap, err := db.ClientSnapshot(ctx, "acme", t0); err != nil {
		t.Fatal(err)
	} else if len(snap.Endpoints) == 1 && snap.Endpoints[0].Labels["ring"] != "pilot" {
		t.Errorf("before its first report the endpoint has labels %v, want its token's", snap.Endpoints[0].Labels)
	}

	for _, tc := range []struct {
		name string
		e    store.Enrollment
		want store.TokenRefusal
	}{
		{"another client's endpoint", ep("ep-x", "globex", tok.ID, t0), store.TokenOtherClient},
		{"a revoked token", ep("ep-x", "acme", revoked.ID, t0), store.TokenRevoked},
		{"at its expiry", ep("ep-x", "acme", tok.ID, tok.ExpiresAt), store.TokenExpired},
	} {
		err := db.Enroll(ctx, tc.e)
		var why store.TokenRefusal
		if !errors.As(err, &why) || why != tc.want {
			t.Errorf("%s: %v, want refused as %q", tc.name, err, tc.want)
		}
	}
	if _, err := db.EndpointByID(ctx, "ep-x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused enrollment stored its endpoint: %v", err)
	}
	if err := db.Enroll(ctx, ep("ep-x", "acme", 9999, t0)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("enrolling with an unknown token: %v, want not found", err)
	}
	// An id already enrolled uses nothing: the transaction is undone.
	if err := db.Enroll(ctx, ep("ep-1", "acme", tok.ID, t0)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("enrolling ep-1 again: %v, want a conflict", err)
	}
	if err := db.Enroll(ctx, ep("ep-2", "acme", tok.ID, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	err = db.Enroll(ctx, ep("ep-3", "acme", tok.ID, t0.Add(time.Minute)))
	var why store.TokenRefusal
	if !errors.As(err, &why) || why != store.TokenUsedUp {
		t.Errorf("a third enrollment with a token of 2 uses: %v, want used up", err)
	}
	h := sha256.Sum256([]byte("ple_acme-pilot"))
	if got, err := db.EnrollTokenByHash(ctx, h[:]); err != nil || got.Uses != 2 {
		t.Errorf("after two enrollments: %+v, %v; want 2 uses", got, err)
	}
	var enrolls []string
	for _, e := range auditOf(t, db) {
		if e.Kind == "enroll" {
			enrolls = append(enrolls, e.Endpoint+" "+string(e.Detail))
		}
	}
	want := []string{`ep-1 {"hostname":"ep-1","token":"acme-pilot"}`, `ep-2 {"hostname":"ep-2","token":"acme-pilot"}`}
	if diff := cmp.Diff(want, enrolls); diff != "" {
		t.Errorf("enroll audit entries (-want +got):\n%s", diff)
	}
}

// testConcurrentTokenUses: enrollments racing for the last uses of a
// token, on handles of one store (replicas), enroll exactly as many
// endpoints as the token has uses.
func testConcurrentTokenUses(t *testing.T, s *suite) {
	ctx := context.Background()
	hs := s.handles(t, 3)
	tok := newEnrollToken("acme-batch", "acme")
	tok.MaxUses = 5
	tok, err := hs[0].CreateEnrollToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	const tries = 12
	var wg sync.WaitGroup
	errs := make([]error, tries)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("ep-%d", i)
			errs[i] = hs[i%len(hs)].Enroll(ctx, store.Enrollment{ID: id, Client: "acme", Hostname: id, NodeKeyHash: []byte(id), EnrolledAt: t0, Token: tok.ID})
		}()
	}
	wg.Wait()
	enrolled := 0
	for i, err := range errs {
		var why store.TokenRefusal
		switch {
		case err == nil:
			enrolled++
		case errors.As(err, &why) && why == store.TokenUsedUp:
		default:
			t.Errorf("enrollment %d: %v", i, err)
		}
	}
	if enrolled != int(tok.MaxUses) {
		t.Errorf("%d enrollments with a token of %d uses", enrolled, tok.MaxUses)
	}
	eps, err := hs[0].Endpoints(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != int(tok.MaxUses) {
		t.Errorf("%d endpoints stored, want %d", len(eps), tok.MaxUses)
	}
}
