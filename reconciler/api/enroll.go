package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Bounds of an enrollment request.
const (
	// minNodeKey keeps a node key from being guessable; the agent sends 32
	// random bytes, 43 characters in base64.
	minNodeKey    = 32
	maxCredential = 512 // node key and instance id
	// maxHostPart is how much of the sanitised hostname goes into an
	// endpoint id.
	maxHostPart = 40
	// maxSuffix bounds the "-2", "-3"... suffixes tried when an endpoint id
	// and its hashed form are both taken by other endpoints.
	maxSuffix = 100
)

// Enrollment budgets: a burst for a batch of machines imaged together,
// then a steady rate that makes guessing enrollment secrets hopeless. One
// source address, or one client, gets half of the controller's budget, so
// it cannot spend all of it.
const (
	enrollBurst = 50
	enrollRate  = 10 // per second
	// maxLimitedKeys bounds the addresses (and clients) with a bucket of
	// their own; see keyedBuckets.
	maxLimitedKeys = 10_000
)

// enrollLimits are the enrollment budgets an enrollment takes from (see
// enroll).
type enrollLimits struct {
	byAddr   *keyedBuckets[netip.Addr]
	byClient *keyedBuckets[string]
	global   *tokenBucket
}

// newEnrollLimits makes the budgets for rate enrollments a second.
func newEnrollLimits(rate float64, now func() time.Time) enrollLimits {
	burst := max(enrollBurst, rate)
	return enrollLimits{
		byAddr:   newKeyedBuckets[netip.Addr](burst/2, rate/2, maxLimitedKeys, now),
		byClient: newKeyedBuckets[string](burst/2, rate/2, maxLimitedKeys, now),
		global:   newTokenBucket(burst, rate, now),
	}
}

// enroll handles POST /v1/enroll. The cheap checks come first: the body
// is read (under the limits of a caller without credentials, see admit)
// and its fields and secret checked. Then the enrollment takes a token
// from its source address's bucket, its client's and the controller's, in
// that order, so a flood from one address, or with one client's secret,
// spends its own budget before anyone else's. A wrong secret costs its
// address too: guessing goes no faster than one address's budget, and
// once that is spent a right guess and a wrong one are both answered 429.
// Every refusal is logged and counted (refusals).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	addr := sourceAddr(r)
	req, reason, err := s.readEnrollment(w, r, addr)
	if err != nil {
		s.refusals.enrollment(r, reason, "")
		return err
	}
	known := s.cfg.Secrets.knows(req.Client)
	secretOK := s.cfg.Secrets.enrollOK(req.Client, req.Secret)
	var client string // named in the log only when it is one of ours
	if known {
		client = req.Client
	}
	if ok, wait := s.enrolls.byAddr.take(addr); !ok {
		s.refusals.enrollment(r, reasonAddressLimit, client)
		return &apiError{code: protocol.CodeRateLimited, msg: "too many enrollments from your address; retry later", retryAfter: wait}
	}
	// The secret is the client's static one, or else an enrollment
	// token: its store read comes after the address's budget, so
	// guessing tokens goes no faster than guessing secrets.
	var tok store.EnrollToken
	switch {
	case secretOK:
	case strings.HasPrefix(req.Secret, protocol.EnrollTokenPrefix):
		var reason string
		if tok, reason, err = s.enrollToken(r.Context(), req); err != nil {
			if reason != "" {
				s.refusals.enrollment(r, reason, client)
			}
			return err
		}
		client = req.Client
	default:
		reason := reasonBadSecret
		if !known {
			reason = reasonUnknownClient
		}
		s.refusals.enrollment(r, reason, client)
		return errorf(protocol.CodeUnauthorized, "unknown client or wrong enrollment secret: give the client's enrollment token (patchctl enroll create --client %s) or its secret from the secrets file", req.Client)
	}
	if ok, wait := s.enrolls.byClient.take(req.Client); !ok {
		s.refusals.enrollment(r, reasonClientLimit, client)
		return &apiError{code: protocol.CodeRateLimited, msg: "too many enrollments for this client; retry later", retryAfter: wait}
	}
	if ok, wait := s.enrolls.global.take(); !ok {
		s.refusals.enrollment(r, reasonGlobalLimit, client)
		return &apiError{code: protocol.CodeRateLimited, msg: "too many enrollments; retry later", retryAfter: wait}
	}

	id, created, err := s.enrollEndpoint(r, req, tok)
	var why store.TokenRefusal
	if errors.As(err, &why) {
		// Used up, or changed since enrollToken read it (another
		// enrollment took its last use, an admin revoked it).
		s.refusals.enrollment(r, tokenRefusalReason(why), client)
		return tokenRefused(tok, why)
	}
	if err != nil {
		return err
	}
	if created {
		method, attrs := enrollBySecret, []any{"client", req.Client, "endpoint", id}
		if tok.ID != 0 {
			method, attrs = enrollByToken, append(attrs, "token", tok.Name)
		}
		s.enrollments.WithLabelValues(method).Inc()
		s.log.InfoContext(r.Context(), "endpoint enrolled", append(attrs, "method", method)...)
		s.cfg.Events.Enrolled(r.Context(), req.Client, id)
	}
	writeJSON(w, http.StatusOK, protocol.EnrollResponse{Endpoint: id, SigningKey: s.cfg.SigningKey})
	return nil
}

// How an endpoint enrolled: the method label of
// patchline_enrollments_total.
const (
	enrollBySecret = "secret"
	enrollByToken  = "token"
)

// readEnrollment reads and checks an enrollment's body; on error it says
// why, as a reason of refusals.
func (s *Server) readEnrollment(w http.ResponseWriter, r *http.Request, addr netip.Addr) (req protocol.EnrollRequest, reason string, err error) {
	done, err := s.admit(w, r, addr, maxEnrollBody)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.code == protocol.CodeTooLarge {
			return req, reasonMalformed, err
		}
		return req, reasonBusy, err
	}
	err = decodeJSON(w, r, &req)
	done(err == nil)
	if err != nil {
		return req, reasonMalformed, err
	}
	switch {
	case req.Client == "":
		return req, reasonMalformed, errorf(protocol.CodeInvalid, "client: missing")
	case req.InstanceID == "" || len(req.InstanceID) > maxCredential:
		return req, reasonMalformed, errorf(protocol.CodeInvalid, "instanceId: must have 1 to %d characters", maxCredential)
	case len(req.NodeKey) < minNodeKey || len(req.NodeKey) > maxCredential:
		return req, reasonMalformed, errorf(protocol.CodeInvalid, "nodeKey: must have %d to %d characters", minNodeKey, maxCredential)
	case req.Hostname == "" || len(req.Hostname) > protocol.MaxHostnameBytes:
		return req, reasonMalformed, errorf(protocol.CodeInvalid, "hostname: must have 1 to %d characters", protocol.MaxHostnameBytes)
	}
	// The endpoint's own facts follow the rules of the reports it will
	// send, so its hostname is never text a renderer must not show.
	host := protocol.Endpoint{Hostname: req.Hostname, OS: req.OS, Labels: req.Labels}
	if err := host.ValidateHost(); err != nil {
		return req, reasonMalformed, errorf(protocol.CodeInvalid, "%v", err)
	}
	return req, "", nil
}

// enrollEndpoint finds the endpoint id of an enrollment and stores it when
// it is new. The id is readable: the client and the hostname
// (endpointID). When another endpoint holds it (another machine of the
// client with that hostname, a re-imaged one, a revoked endpoint, or
// another client's whose id happens to read the same), the next candidate
// is tried: the id with 4 hex digits of the instance id's hash, then that
// with "-2", "-3"... (candidates). The hashed suffix keeps the candidates
// of one instance its own, so a retried enrollment finds its endpoint
// after a lookup or two, however many machines share a hostname.
//
// An enrollment with an enrollment token (tok.ID set) stores the endpoint
// with the token's labels, using the token in the same transaction; a
// retried enrollment finds its endpoint and uses nothing.
func (s *Server) enrollEndpoint(r *http.Request, req protocol.EnrollRequest, tok store.EnrollToken) (id string, created bool, err error) {
	ctx := r.Context()
	cred := credential(req.InstanceID, req.NodeKey)
	ids := candidates(req.Client, req.Hostname, req.InstanceID)
	for _, id := range ids {
		// Two tries: a concurrent retry of the same enrollment may store
		// the id between the lookup and the insert; the second lookup then
		// finds it.
		for range 2 {
			ep, err := s.cfg.Store.EndpointByID(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				if old, ok, err := s.enrolledBefore(ctx, req, id); ok || err != nil {
					return old, false, err
				}
				ep := store.Enrollment{
					ID: id, Client: req.Client, Hostname: req.Hostname, NodeKeyHash: cred, EnrolledAt: s.cfg.Now(),
					Token: tok.ID, Labels: tok.Labels,
				}
				err = s.cfg.Store.Enroll(ctx, ep)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					return "", false, fmt.Errorf("enroll endpoint %q: %w", id, err)
				}
				// The agent's next request, its first report, is
				// authenticated against the enrollment just stored (in
				// place of the tombstone of an endpoint deleted before).
				s.enrolled.Store(id, cachedEnrollment{ep: ep})
				return id, true, nil
			}
			if err != nil {
				return "", false, fmt.Errorf("enroll endpoint %q: %w", id, err)
			}
			if !ownEndpoint(ep, req) {
				// Another instance's id, or a revoked endpoint's (whose
				// instance enrolls again only as a new endpoint): try the
				// next candidate.
				break
			}
			if !keyMatches(ep.NodeKeyHash, req.NodeKey) {
				return "", false, errorf(protocol.CodeConflict, "instance %q is already enrolled with another node key", req.InstanceID)
			}
			return id, false, nil
		}
	}
	return "", false, errorf(protocol.CodeConflict, "no free endpoint id for host %q: %s to %s are taken", req.Hostname, ids[0], ids[len(ids)-1])
}

// ownEndpoint reports whether ep is the live endpoint of the instance
// that enrolls with req.
func ownEndpoint(ep store.Enrollment, req protocol.EnrollRequest) bool {
	return ep.Client == req.Client && sameInstance(ep.NodeKeyHash, req.InstanceID) && ep.RevokedAt.IsZero()
}

// enrolledBefore finds the endpoint an instance got from a controller
// older than the readable ids, whose agent retries its enrollment (its
// answer was lost) after the upgrade: the id it has is the one to give
// back. free is the candidate the enrollment would take otherwise.
func (s *Server) enrolledBefore(ctx context.Context, req protocol.EnrollRequest, free string) (string, bool, error) {
	id := legacyEndpointID(req.Client, req.Hostname, req.InstanceID)
	if id == free {
		return "", false, nil
	}
	ep, err := s.cfg.Store.EndpointByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("enroll endpoint %q: %w", id, err)
	}
	if !ownEndpoint(ep, req) {
		return "", false, nil
	}
	if !keyMatches(ep.NodeKeyHash, req.NodeKey) {
		return "", false, errorf(protocol.CodeConflict, "instance %q is already enrolled with another node key", req.InstanceID)
	}
	return id, true, nil
}

// candidates are the endpoint ids an enrollment may take, in the order it
// tries them: "<client>-<host>" (endpointID), then that with 4 hex digits
// of the instance id's SHA-256, then that with "-2", "-3"... up to
// maxSuffix.
func candidates(client, hostname, instanceID string) []string {
	base := endpointID(client, hostname)
	hashed := base + "-" + instanceHash(instanceID)
	ids := []string{base, hashed}
	for n := 2; n <= maxSuffix; n++ {
		ids = append(ids, hashed+"-"+strconv.Itoa(n))
	}
	return ids
}

// endpointID is the readable id of an endpoint: "<client>-<host>", host
// being the hostname lowercased with every run of characters other than
// a-z and 0-9 turned into one "-" (none at either end), at most
// maxHostPart bytes of it, "host" when nothing is left. A host that
// already starts with "<client>-" loses that prefix: ACME-WS-04 of client
// acme is acme-ws-04, not acme-acme-ws-04. The hostname is endpoint text
// (any script, any symbol): the id has only a-z, 0-9 and "-" beside the
// client id, so it meets protocol.CheckClientID's rule for ids.
func endpointID(client, hostname string) string {
	host := hostPart(hostname)
	if rest, ok := strings.CutPrefix(host, client+"-"); ok {
		host = rest
	}
	return client + "-" + host
}

// legacyEndpointID is the id older controllers gave an instance:
// "<client>-<host>-<4 hex digits of the instance id's hash>", the host
// part kept whole.
func legacyEndpointID(client, hostname, instanceID string) string {
	return client + "-" + hostPart(hostname) + "-" + instanceHash(instanceID)
}

// hostPart is the hostname as endpoint ids hold it (see endpointID).
func hostPart(hostname string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(hostname) {
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			sep := dash && b.Len() > 0
			if sep && b.Len()+2 > maxHostPart || b.Len()+1 > maxHostPart {
				break
			}
			if sep {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
			continue
		}
		dash = true
	}
	if b.Len() == 0 {
		return "host"
	}
	return b.String()
}

// instanceHash is the short hash of an instance id that endpoint ids
// carry when they must be told apart.
func instanceHash(instanceID string) string {
	h := sha256.Sum256([]byte(instanceID))
	return hex.EncodeToString(h[:2])
}
