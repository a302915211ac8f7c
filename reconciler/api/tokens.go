package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// tokenSecretBytes is how many random bytes a token's secret has.
const tokenSecretBytes = 32

// usedEvery is how often a token's last use is written to the store: a
// token a script uses every second costs a write a minute, not a second.
const usedEvery = time.Minute

// caller is who an admin request comes from: the token it presented, and
// what that token may do.
type caller struct {
	// name is the token's name; protocol.BootstrapTokenName for the
	// secrets file's admin token.
	name   string
	scopes []protocol.Scope
	// clients are the clients a read token is limited to, sorted; nil
	// means every client.
	clients []string
	// clientSet holds clients, for lookups.
	clientSet map[string]bool
}

// bootstrap is the caller of the secrets file's admin token: every right.
var bootstrap = caller{name: protocol.BootstrapTokenName, scopes: []protocol.Scope{protocol.ScopeAdmin}}

func newCaller(name string, scopes []protocol.Scope, clients []string) caller {
	c := caller{name: name, scopes: scopes}
	if len(clients) > 0 {
		c.clients = slices.Sorted(slices.Values(clients))
		c.clientSet = make(map[string]bool, len(clients))
		for _, cl := range clients {
			c.clientSet[cl] = true
		}
	}
	return c
}

// may reports whether the caller holds scope; admin holds every scope.
func (c caller) may(scope protocol.Scope) bool {
	return slices.Contains(c.scopes, scope) || slices.Contains(c.scopes, protocol.ScopeAdmin)
}

// limited reports whether the caller is limited to some clients.
func (c caller) limited() bool { return c.clientSet != nil }

// sees reports whether the caller may read client's data.
func (c caller) sees(client string) bool { return c.clientSet == nil || c.clientSet[client] }

// liveToken is a stored token as the API checks it.
type liveToken struct {
	caller
	hash    [sha256.Size]byte
	revoked bool
	// lastUsed is the last use written to the store, in Unix nanoseconds.
	lastUsed atomic.Int64
}

// tokenSet holds every stored token (revoked ones too, to say so) by the
// hash of its secret, so checking a token costs a hash and a map lookup,
// not a store read. It is loaded from the store on first use and changed
// only here, after the store committed, so a revoked token is refused
// from the moment its revocation is answered.
type tokenSet struct {
	store Store
	// writing serialises what changes the set: the first load and each
	// creation or revocation, each of which holds it across its store
	// write and its change to byHash. A load that read the store before a
	// revocation therefore cannot install the token afterwards as if it
	// were not revoked.
	writing sync.Mutex
	mu      sync.RWMutex // guards loaded and byHash
	loaded  bool
	byHash  map[[sha256.Size]byte]*liveToken
}

// lookup returns the token whose secret hashes to h, or nil.
func (ts *tokenSet) lookup(ctx context.Context, h [sha256.Size]byte) (*liveToken, error) {
	ts.mu.RLock()
	loaded, t := ts.loaded, ts.byHash[h]
	ts.mu.RUnlock()
	if loaded {
		return t, nil
	}
	ts.writing.Lock()
	defer ts.writing.Unlock()
	if err := ts.loadLocked(ctx); err != nil {
		return nil, err
	}
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.byHash[h], nil
}

// loadLocked loads the set from the store once; the caller holds writing.
func (ts *tokenSet) loadLocked(ctx context.Context) error {
	ts.mu.RLock()
	loaded := ts.loaded
	ts.mu.RUnlock()
	if loaded {
		return nil
	}
	stored, err := ts.store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("load tokens: %w", err)
	}
	byHash := make(map[[sha256.Size]byte]*liveToken, len(stored))
	for _, t := range stored {
		lt, err := newLiveToken(t)
		if err != nil {
			return fmt.Errorf("load tokens: %w", err)
		}
		byHash[lt.hash] = lt
	}
	ts.mu.Lock()
	ts.byHash, ts.loaded = byHash, true
	ts.mu.Unlock()
	return nil
}

// put adds or replaces t in the set; the caller holds writing.
func (ts *tokenSet) put(t store.Token) error {
	lt, err := newLiveToken(t)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	ts.byHash[lt.hash] = lt
	ts.mu.Unlock()
	return nil
}

func newLiveToken(t store.Token) (*liveToken, error) {
	if len(t.Hash) != sha256.Size {
		return nil, fmt.Errorf("token %q: stored hash has %d bytes, want %d", t.Name, len(t.Hash), sha256.Size)
	}
	lt := &liveToken{caller: newCaller(t.Name, t.Scopes, t.Clients), revoked: !t.RevokedAt.IsZero()}
	copy(lt.hash[:], t.Hash)
	if !t.LastUsed.IsZero() {
		lt.lastUsed.Store(t.LastUsed.UnixNano())
	}
	return lt, nil
}

// adminHandler is an admin route's handler, called once the caller's
// token is checked and holds the route's scope.
type adminHandler func(w http.ResponseWriter, r *http.Request, c caller) error

// admin checks the request's token and that it holds scope. A missing,
// unknown or revoked token is 401, logged and counted (refusals); a token
// without the scope is 403, logged. The secrets file's admin token holds
// every scope.
func (s *Server) admin(scope protocol.Scope, h adminHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if !c.may(scope) {
			s.refusals.scope(r, c.name, scope)
			return errorf(protocol.CodeForbidden, "token %q holds %s; this needs the %s scope", c.name, scopeList(c.scopes), scope)
		}
		return h(w, r, c)
	}
}

// authenticate returns the caller of r's bearer token.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	token, ok := bearer(r)
	if !ok {
		s.refusals.adminToken(r, "missing", "")
		return caller{}, errorf(protocol.CodeUnauthorized, "missing token: send Authorization: Bearer <token>")
	}
	if s.cfg.Secrets.adminOK(token) {
		return bootstrap, nil
	}
	h := sha256.Sum256([]byte(token))
	t, err := s.tokens.lookup(r.Context(), h)
	if err != nil {
		return caller{}, err
	}
	// The map is keyed by the hash of what the caller sent, so its lookup
	// time says nothing of a stored secret; the hashes are compared in
	// constant time all the same, as every credential here is.
	if t == nil || subtle.ConstantTimeCompare(t.hash[:], h[:]) != 1 {
		s.refusals.adminToken(r, "wrong", "")
		return caller{}, errorf(protocol.CodeUnauthorized, "unknown or wrong token")
	}
	if t.revoked {
		s.refusals.adminToken(r, "revoked", t.name)
		return caller{}, errorf(protocol.CodeUnauthorized, "token %q is revoked", t.name)
	}
	s.tokenUsed(r.Context(), t)
	return t.caller, nil
}

// tokenUsed writes t's last use to the store when the one written is
// older than usedEvery. A failure is logged: the request goes on.
func (s *Server) tokenUsed(ctx context.Context, t *liveToken) {
	now := s.cfg.Now().Truncate(time.Minute)
	last := t.lastUsed.Load()
	if now.UnixNano()-last < int64(usedEvery) || !t.lastUsed.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if err := s.cfg.Store.TokenUsed(ctx, t.name, now); err != nil {
		s.log.WarnContext(ctx, "cannot record a token's use", "token", t.name, "err", err)
	}
}

// scopeList shows scopes for a message: "read, backup".
func scopeList(scopes []protocol.Scope) string {
	s := ""
	for i, sc := range scopes {
		if i > 0 {
			s += ", "
		}
		s += string(sc)
	}
	return s
}

// createToken handles POST /v1/tokens: a new token with a new secret,
// answered once and kept only as its hash.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c caller) error {
	var req protocol.TokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkTokenRequest(&req); err != nil {
		return err
	}
	secret, hash, err := newTokenSecret()
	if err != nil {
		return err
	}
	t := store.Token{
		Name: req.Name, Hash: hash[:], Scopes: req.Scopes, Clients: req.Clients,
		CreatedAt: s.cfg.Now(), CreatedBy: c.name,
	}
	ts := &s.tokens
	ts.writing.Lock()
	defer ts.writing.Unlock()
	if err := ts.loadLocked(r.Context()); err != nil {
		return err
	}
	if err := s.cfg.Store.CreateToken(r.Context(), t); err != nil {
		return storeError(err, "")
	}
	if err := ts.put(t); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "token created", "token", t.Name, "scopes", scopeList(t.Scopes), "by", c.name)
	writeJSON(w, http.StatusCreated, protocol.TokenCreated{Token: tokenInfo(t), Secret: secret})
	return nil
}

// checkTokenRequest checks a token's name, scopes and clients; its
// errors name the field. Scopes and clients are sorted and must not
// repeat.
func checkTokenRequest(req *protocol.TokenRequest) error {
	if err := protocol.CheckTokenName(req.Name); err != nil {
		return errorf(protocol.CodeInvalid, "name: %v", err)
	}
	if len(req.Scopes) == 0 {
		return errorf(protocol.CodeInvalid, "scopes: missing: give one or more of %s", scopeList(protocol.Scopes))
	}
	for i, sc := range req.Scopes {
		switch {
		case !slices.Contains(protocol.Scopes, sc):
			return errorf(protocol.CodeInvalid, "scopes[%d]: unknown scope %.40q: want %s", i, sc, scopeList(protocol.Scopes))
		case slices.Contains(req.Scopes[:i], sc):
			return errorf(protocol.CodeInvalid, "scopes[%d]: %s is given twice", i, sc)
		}
	}
	if len(req.Clients) > protocol.MaxTokenClients {
		return errorf(protocol.CodeInvalid, "clients: %d clients, at most %d are accepted", len(req.Clients), protocol.MaxTokenClients)
	}
	for i, cl := range req.Clients {
		if err := protocol.CheckClientID(cl); err != nil {
			return errorf(protocol.CodeInvalid, "clients[%d]: %v", i, err)
		}
		if slices.Contains(req.Clients[:i], cl) {
			return errorf(protocol.CodeInvalid, "clients[%d]: %s is given twice", i, cl)
		}
	}
	if len(req.Clients) > 0 && (slices.Contains(req.Scopes, protocol.ScopeBackup) || slices.Contains(req.Scopes, protocol.ScopeAdmin)) {
		return errorf(protocol.CodeInvalid, "clients: a token limited to clients can hold only the read scope: a backup holds every client, and admin manages them all")
	}
	slices.Sort(req.Scopes)
	slices.Sort(req.Clients)
	return nil
}

// newTokenSecret makes a token's secret, TokenPrefix and 32 random bytes
// in unpadded base64url, and its hash.
func newTokenSecret() (string, [sha256.Size]byte, error) {
	return newSecret(protocol.TokenPrefix)
}

// listTokens handles GET /v1/tokens: every token, revoked ones too,
// without secrets or hashes.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, _ caller) error {
	stored, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	list := protocol.TokenList{Tokens: make([]protocol.Token, 0, len(stored))}
	for _, t := range stored {
		list.Tokens = append(list.Tokens, tokenInfo(t))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// revokeToken handles DELETE /v1/tokens/{name}: the token is refused from
// the moment this answers.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	if name == protocol.BootstrapTokenName {
		return errorf(protocol.CodeInvalid, "name: %s is the secrets file's admin token: change it in the secrets file and restart patchd", name)
	}
	if err := protocol.CheckTokenName(name); err != nil {
		return errorf(protocol.CodeInvalid, "name: %v", err)
	}
	ts := &s.tokens
	ts.writing.Lock()
	defer ts.writing.Unlock()
	if err := ts.loadLocked(r.Context()); err != nil {
		return err
	}
	t, err := s.cfg.Store.RevokeToken(r.Context(), name, c.name, s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return errorf(protocol.CodeNotFound, "no token named %q", name)
	}
	if err != nil {
		return storeError(err, "")
	}
	if err := ts.put(t); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "token revoked", "token", name, "by", c.name)
	writeJSON(w, http.StatusOK, tokenInfo(t))
	return nil
}

// tokenInfo is t as the admin API shows it.
func tokenInfo(t store.Token) protocol.Token {
	return protocol.Token{
		Name: t.Name, Scopes: t.Scopes, Clients: t.Clients,
		CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy, LastUsed: t.LastUsed.UTC(),
		RevokedAt: t.RevokedAt.UTC(), RevokedBy: t.RevokedBy,
	}
}

// NewTokenSecret makes the secret of an admin API token and its SHA-256,
// for a token patchd stores itself (the bootstrap admin token of a patchd
// started without a secrets file).
func NewTokenSecret() (string, [sha256.Size]byte, error) { return newTokenSecret() }
