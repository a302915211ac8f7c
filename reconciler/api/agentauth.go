package api

// How agent requests are authenticated: the endpoint's node key against
// its enrollment, cached by endpoint id, and what a revocation or a
// deletion does to that cache.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// agentHandler is an agent route's handler, called once the node key is
// checked.
type agentHandler func(w http.ResponseWriter, r *http.Request, ep store.Enrollment) error

// agent authenticates the endpoint a request is made for: the
// X-Patchline-Endpoint header names it and the bearer token is its node key.
func (s *Server) agent(h agentHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.Header.Get(protocol.HeaderEndpoint)
		key, ok := bearer(r)
		if id == "" || !ok {
			return errorf(protocol.CodeUnauthorized, "missing %s header or bearer node key", protocol.HeaderEndpoint)
		}
		ep, err := s.enrollment(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return fmt.Errorf("authenticate endpoint %q: %w", id, err)
		}
		if !keyMatches(ep.NodeKeyHash, key) {
			return errUnauthorized
		}
		if !ep.RevokedAt.IsZero() {
			return errRevoked(ep.ID)
		}
		return h(w, r, ep)
	}
}

// errRevoked answers a revoked endpoint's agent, once its node key
// matched.
func errRevoked(id string) error {
	return errorf(protocol.CodeUnauthorized, "endpoint %s is revoked: its node key is refused; it can enroll again only as a new endpoint", id)
}

// cachedEnrollment is a value of Server.enrolled.
type cachedEnrollment struct {
	ep store.Enrollment
	// deleted marks an endpoint deleted through the admin API: it is
	// unknown until it enrolls again.
	deleted bool
}

// enrollment returns the enrollment of endpoint id, from the cache when it
// is there; a deleted endpoint is store.ErrNotFound.
func (s *Server) enrollment(ctx context.Context, id string) (store.Enrollment, error) {
	v, ok := s.enrolled.Load(id)
	if !ok {
		ep, err := s.cfg.Store.EndpointByID(ctx, id)
		if err != nil {
			return store.Enrollment{}, err
		}
		// LoadOrStore, never Store: a revocation or deletion stored since
		// the read above wins over what the read found.
		v, _ = s.enrolled.LoadOrStore(id, cachedEnrollment{ep: ep})
	}
	c := v.(cachedEnrollment)
	if c.deleted {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: deleted: %w", id, store.ErrNotFound)
	}
	return c.ep, nil
}

// stillEnrolled reports whether ep, which a request was authenticated
// against, is still the endpoint's enrollment: not revoked, not deleted,
// not enrolled again with another key. A long-poll asks it each time it
// wakes, so a revocation ends it.
func (s *Server) stillEnrolled(ctx context.Context, ep store.Enrollment) error {
	cur, err := s.enrollment(ctx, ep.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errUnauthorized
	}
	if err != nil {
		return fmt.Errorf("authenticate endpoint %q: %w", ep.ID, err)
	}
	if !cur.RevokedAt.IsZero() {
		return errRevoked(ep.ID)
	}
	if subtle.ConstantTimeCompare(cur.NodeKeyHash, ep.NodeKeyHash) != 1 {
		return errUnauthorized
	}
	return nil
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// The stored NodeKeyHash of an endpoint is its credential record:
// SHA-256(instance id) followed by SHA-256(node key). The first half lets a
// retried enrollment recognise its own endpoint without the store keeping
// instance ids; only the second half authenticates.
const credentialSize = 2 * sha256.Size

// credential builds the stored credential record of an enrollment.
func credential(instanceID, nodeKey string) []byte {
	inst := sha256.Sum256([]byte(instanceID))
	key := sha256.Sum256([]byte(nodeKey))
	return append(inst[:], key[:]...)
}

// sameInstance reports whether a credential record belongs to instanceID.
func sameInstance(cred []byte, instanceID string) bool {
	if len(cred) != credentialSize {
		return false
	}
	inst := sha256.Sum256([]byte(instanceID))
	return subtle.ConstantTimeCompare(cred[:sha256.Size], inst[:]) == 1
}

// keyMatches reports, in constant time, whether nodeKey is the key of a
// credential record.
func keyMatches(cred []byte, nodeKey string) bool {
	if len(cred) != credentialSize {
		return false
	}
	key := sha256.Sum256([]byte(nodeKey))
	return subtle.ConstantTimeCompare(cred[sha256.Size:], key[:]) == 1
}
