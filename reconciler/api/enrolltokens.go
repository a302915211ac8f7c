package api

// Enrollment tokens made at runtime: the admin routes that create, list
// and revoke them, and how an enrollment presenting one is checked. Only
// a token's hash is stored; every use is checked against the store (not a
// cache), so a token another replica created or revoked counts at once.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Bounds of an enrollment token request.
const (
	// maxEnrollTokenLife is the longest ExpiresIn accepted: ten years.
	maxEnrollTokenLife = 10 * 366 * 24 * time.Hour
	// maxEnrollTokenUses is the largest MaxUses accepted.
	maxEnrollTokenUses = 1_000_000_000
)

// createEnrollToken handles POST /v1/enroll-tokens: a new enrollment
// token with a new secret, answered once and kept only as its hash.
func (s *Server) createEnrollToken(w http.ResponseWriter, r *http.Request, c caller) error {
	var req protocol.EnrollTokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	life, err := checkEnrollTokenRequest(&req)
	if err != nil {
		return err
	}
	secret, hash, err := newSecret(protocol.EnrollTokenPrefix)
	if err != nil {
		return err
	}
	if req.Name == "" {
		// Three random bytes: a name a technician can type, unlikely to
		// be taken; a taken one is a conflict to retry.
		req.Name = req.Client + "-" + hex.EncodeToString(hash[:3])
	}
	now := s.cfg.Now()
	t := store.EnrollToken{
		Name: req.Name, Client: req.Client, Hash: hash[:], Labels: req.Labels, MaxUses: req.MaxUses,
		CreatedAt: now, CreatedBy: c.name,
	}
	if life > 0 {
		t.ExpiresAt = now.Add(life)
	}
	t, err = s.cfg.Store.CreateEnrollToken(r.Context(), t)
	if err != nil {
		return storeError(err, "")
	}
	s.log.InfoContext(r.Context(), "enrollment token created", "token", t.Name, "id", t.ID, "client", t.Client, "by", c.name)
	writeJSON(w, http.StatusCreated, protocol.EnrollTokenCreated{Token: enrollTokenInfo(t, now), Secret: secret, Warning: s.unknownClient(r.Context(), t.Client)})
	return nil
}

// unknownClient is a warning when the controller's status names client
// as one the fleet repo does not have, or does not name it at all: a
// token for a client still on its way (a pull request not yet merged) is
// fine, a typo is not, and only the technician can tell which.
func (s *Server) unknownClient(ctx context.Context, client string) string {
	doc, err := s.cfg.Status(ctx)
	if err != nil {
		return "" // the token is made; the status is the status page's concern
	}
	for _, cs := range doc.Clients {
		if cs.Client == client && cs.Known {
			return ""
		}
	}
	return fmt.Sprintf("the fleet repo has no client %q (yet): endpoints enrolled with this token get no policy until it does; revoke the token if the name is a mistake", client)
}

// checkEnrollTokenRequest checks an enrollment token request; its errors
// name the field. It returns how long the token lives (0: for ever).
func checkEnrollTokenRequest(req *protocol.EnrollTokenRequest) (time.Duration, error) {
	if err := protocol.CheckClientID(req.Client); err != nil {
		return 0, errorf(protocol.CodeInvalid, "client: %v", err)
	}
	if req.Name != "" {
		if err := protocol.CheckEnrollTokenName(req.Name); err != nil {
			return 0, errorf(protocol.CodeInvalid, "name: %v", err)
		}
	}
	// The labels an endpoint inherits follow the rules of the labels its
	// agent reports.
	if err := (&protocol.Endpoint{Labels: req.Labels}).ValidateHost(); err != nil {
		return 0, errorf(protocol.CodeInvalid, "%v", err)
	}
	if req.MaxUses < 0 || req.MaxUses > maxEnrollTokenUses {
		return 0, errorf(protocol.CodeInvalid, "maxUses: %d is outside 0 (no limit) to %d", req.MaxUses, maxEnrollTokenUses)
	}
	if req.ExpiresIn == "" {
		return 0, nil
	}
	life, err := time.ParseDuration(req.ExpiresIn)
	if err != nil || life <= 0 || life > maxEnrollTokenLife {
		return 0, errorf(protocol.CodeInvalid, "expiresIn: %.40q is not a duration from 1s to %s (as 168h)", req.ExpiresIn, maxEnrollTokenLife)
	}
	return life, nil
}

// newSecret makes a secret, prefix and 32 random bytes in unpadded
// base64url, and its hash.
func newSecret(prefix string) (string, [sha256.Size]byte, error) {
	b := make([]byte, tokenSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", [sha256.Size]byte{}, fmt.Errorf("token secret: %w", err)
	}
	secret := prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, sha256.Sum256([]byte(secret)), nil
}

// listEnrollTokens handles GET /v1/enroll-tokens[?client=ID]: every
// enrollment token (of one client), revoked ones too, without secrets or
// hashes.
func (s *Server) listEnrollTokens(w http.ResponseWriter, r *http.Request, _ caller) error {
	client := r.URL.Query().Get("client")
	if client != "" {
		if err := protocol.CheckClientID(client); err != nil {
			return errorf(protocol.CodeInvalid, "client: %v", err)
		}
	}
	stored, err := s.cfg.Store.EnrollTokens(r.Context())
	if err != nil {
		return fmt.Errorf("list enrollment tokens: %w", err)
	}
	now := s.cfg.Now()
	list := protocol.EnrollTokenList{Tokens: []protocol.EnrollToken{}}
	for _, t := range stored {
		if client == "" || t.Client == client {
			list.Tokens = append(list.Tokens, enrollTokenInfo(t, now))
		}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// revokeEnrollToken handles DELETE /v1/enroll-tokens/{token}, by id or
// name: the token enrolls nothing from the moment this answers. The
// endpoints it enrolled stay.
func (s *Server) revokeEnrollToken(w http.ResponseWriter, r *http.Request, c caller) error {
	ref := r.PathValue("token")
	id, err := s.findEnrollToken(r.Context(), ref)
	if err != nil {
		return err
	}
	t, err := s.cfg.Store.RevokeEnrollToken(r.Context(), id, c.name, s.cfg.Now())
	if errors.Is(err, store.ErrNotFound) {
		return errorf(protocol.CodeNotFound, "no enrollment token with id or name %q: see patchctl enroll list", ref)
	}
	if err != nil {
		return storeError(err, "")
	}
	s.log.InfoContext(r.Context(), "enrollment token revoked", "token", t.Name, "id", t.ID, "client", t.Client, "by", c.name)
	writeJSON(w, http.StatusOK, enrollTokenInfo(t, s.cfg.Now()))
	return nil
}

// findEnrollToken returns the id of the enrollment token ref names: its
// id (digits) or its name.
func (s *Server) findEnrollToken(ctx context.Context, ref string) (int64, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	if err := protocol.CheckEnrollTokenName(ref); err != nil {
		return 0, errorf(protocol.CodeInvalid, "give an enrollment token's id or name: %v", err)
	}
	stored, err := s.cfg.Store.EnrollTokens(ctx)
	if err != nil {
		return 0, fmt.Errorf("find enrollment token: %w", err)
	}
	for _, t := range stored {
		if t.Name == ref {
			return t.ID, nil
		}
	}
	return 0, errorf(protocol.CodeNotFound, "no enrollment token with id or name %q: see patchctl enroll list", ref)
}

// enrollTokenInfo is t as the admin API shows it at now.
func enrollTokenInfo(t store.EnrollToken, now time.Time) protocol.EnrollToken {
	state := protocol.EnrollTokenActive
	switch t.Refusal(t.Client, now) {
	case store.TokenRevoked:
		state = protocol.EnrollTokenRevoked
	case store.TokenExpired:
		state = protocol.EnrollTokenExpired
	case store.TokenUsedUp:
		state = protocol.EnrollTokenUsedUp
	}
	return protocol.EnrollToken{
		ID: t.ID, Name: t.Name, Client: t.Client, Labels: t.Labels,
		ExpiresAt: t.ExpiresAt.UTC(), MaxUses: t.MaxUses, Uses: t.Uses, State: state,
		CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy, RevokedAt: t.RevokedAt.UTC(), RevokedBy: t.RevokedBy,
	}
}

// enrollToken checks the enrollment token an enrollment presents as its
// secret: it must be a token of the enrollment's client that is neither
// revoked nor expired. Whether it has a use left is the store's to say,
// in the transaction that would use it: a retried enrollment, whose
// endpoint exists already, uses nothing and is answered even when the
// first took the token's last use. On refusal it returns the reason, for
// refusals.
func (s *Server) enrollToken(ctx context.Context, req protocol.EnrollRequest) (store.EnrollToken, string, error) {
	h := sha256.Sum256([]byte(req.Secret))
	t, err := s.cfg.Store.EnrollTokenByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return t, reasonTokenUnknown, errorf(protocol.CodeUnauthorized,
			"unknown enrollment token: ask for a new one (patchctl enroll create --client %s)", req.Client)
	}
	if err != nil {
		return t, "", fmt.Errorf("enrollment token: %w", err)
	}
	switch why := t.Refusal(req.Client, s.cfg.Now()); why {
	case "", store.TokenUsedUp:
		return t, "", nil
	default:
		return t, tokenRefusalReason(why), tokenRefused(t, why)
	}
}

// tokenRefused is the answer to an enrollment with token t, refused for
// why.
func tokenRefused(t store.EnrollToken, why store.TokenRefusal) error {
	if why == store.TokenOtherClient {
		// The token's own client is not named: the caller named another.
		return errorf(protocol.CodeForbidden, "enrollment token %q is not a token of this client: pass the --client the token was made for, or ask for a token of this client (patchctl enroll create --client CLIENT)", t.Name)
	}
	return errorf(protocol.CodeForbidden, "enrollment token %q is %s: ask for a new one (patchctl enroll create --client %s)", t.Name, string(why), t.Client)
}

// tokenRefusalReason is the refusals reason of why.
func tokenRefusalReason(why store.TokenRefusal) string {
	switch why {
	case store.TokenRevoked:
		return reasonTokenRevoked
	case store.TokenExpired:
		return reasonTokenExpired
	case store.TokenUsedUp:
		return reasonTokenUsedUp
	default:
		return reasonTokenOtherClient
	}
}

// withEnrollmentLabels returns the labels a report of ep is stored with:
// the agent's, and over them ep's enrollment labels (its token's). It
// also returns the keys whose value the agent sent differently, sorted.
func withEnrollmentLabels(ep store.Enrollment, agent map[string]string) (map[string]string, []string) {
	if len(ep.Labels) == 0 {
		return agent, nil
	}
	merged := maps.Clone(agent)
	if merged == nil {
		merged = make(map[string]string, len(ep.Labels))
	}
	var overridden []string
	for k, v := range ep.Labels {
		if old, ok := merged[k]; ok && old != v {
			overridden = append(overridden, k)
		}
		merged[k] = v
	}
	slices.Sort(overridden)
	return merged, overridden
}

// labelsOverridden logs, once per endpoint and set of keys, that the
// enrollment labels of ep replaced the values its agent reported for
// keys: a report every hour would otherwise log the same line every hour.
func (s *Server) labelsOverridden(ctx context.Context, ep store.Enrollment, keys []string) {
	joined := strings.Join(keys, ",")
	if prev, ok := s.overridden.Swap(ep.ID, joined); ok && prev.(string) == joined {
		return
	}
	if len(keys) == 0 {
		return
	}
	s.log.InfoContext(ctx, "the endpoint's enrollment token sets labels its agent reports otherwise; the token's win",
		"client", ep.Client, "endpoint", ep.ID, "labels", joined)
}
