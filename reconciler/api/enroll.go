package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	maxHostname   = 253
	// maxHostPart is how much of the sanitised hostname goes into an
	// endpoint id.
	maxHostPart = 40
	// maxSuffix bounds the "-2", "-3"... suffixes tried when an endpoint id
	// is taken by another instance.
	maxSuffix = 100
)

// enroll handles POST /v1/enroll. Its body is read under the limits of a
// caller without credentials (see admit).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	if ok, wait := s.enrolls.take(); !ok {
		return &apiError{code: protocol.CodeRateLimited, msg: "too many enrollments; retry later", retryAfter: wait}
	}
	var req protocol.EnrollRequest
	done, err := s.admit(w, r, sourceAddr(r), maxEnrollBody)
	if err != nil {
		return err
	}
	err = decodeJSON(w, r, &req)
	done(err == nil)
	if err != nil {
		return err
	}
	switch {
	case req.Client == "":
		return errorf(protocol.CodeInvalid, "client: missing")
	case req.InstanceID == "" || len(req.InstanceID) > maxCredential:
		return errorf(protocol.CodeInvalid, "instanceId: must have 1 to %d characters", maxCredential)
	case len(req.NodeKey) < minNodeKey || len(req.NodeKey) > maxCredential:
		return errorf(protocol.CodeInvalid, "nodeKey: must have %d to %d characters", minNodeKey, maxCredential)
	case req.Hostname == "" || len(req.Hostname) > maxHostname:
		return errorf(protocol.CodeInvalid, "hostname: must have 1 to %d characters", maxHostname)
	}
	if !s.cfg.Secrets.enrollOK(req.Client, req.Secret) {
		return errorf(protocol.CodeUnauthorized, "unknown client or wrong enrollment secret")
	}

	id, created, err := s.enrollEndpoint(r, req)
	if err != nil {
		return err
	}
	if created {
		s.log.InfoContext(r.Context(), "endpoint enrolled", "client", req.Client, "endpoint", id)
		s.cfg.Events.Enrolled(r.Context(), req.Client, id)
	}
	writeJSON(w, http.StatusOK, protocol.EnrollResponse{Endpoint: id, SigningKey: s.cfg.SigningKey})
	return nil
}

// enrollEndpoint finds the endpoint id of an enrollment and stores it when
// it is new. The id is the client, the sanitised hostname and a short hash
// of the instance id, so a retry maps to the same id without a lookup table.
// When another instance holds that id (two machines of one client with the
// same hostname whose hashes collide), "-2", "-3"... are tried in turn.
func (s *Server) enrollEndpoint(r *http.Request, req protocol.EnrollRequest) (id string, created bool, err error) {
	ctx := r.Context()
	base := endpointID(req.Client, req.Hostname, req.InstanceID)
	cred := credential(req.InstanceID, req.NodeKey)
	for n := 1; n <= maxSuffix; n++ {
		id = base
		if n > 1 {
			id = base + "-" + strconv.Itoa(n)
		}
		// Two tries: a concurrent retry of the same enrollment may store
		// the id between the lookup and the insert; the second lookup then
		// finds it.
		for range 2 {
			ep, err := s.cfg.Store.EndpointByID(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				ep := store.Enrollment{
					ID: id, Client: req.Client, Hostname: req.Hostname, NodeKeyHash: cred, EnrolledAt: s.cfg.Now(),
				}
				err = s.cfg.Store.Enroll(ctx, ep)
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					return "", false, fmt.Errorf("enroll endpoint %q: %w", id, err)
				}
				// The agent's next request, its first report, is
				// authenticated against the enrollment just stored.
				s.enrolled.Store(id, ep)
				return id, true, nil
			}
			if err != nil {
				return "", false, fmt.Errorf("enroll endpoint %q: %w", id, err)
			}
			if ep.Client != req.Client || !sameInstance(ep.NodeKeyHash, req.InstanceID) {
				break // another instance's id: try the next suffix
			}
			if !keyMatches(ep.NodeKeyHash, req.NodeKey) {
				return "", false, errorf(protocol.CodeConflict, "instance %q is already enrolled with another node key", req.InstanceID)
			}
			return id, false, nil
		}
	}
	return "", false, errorf(protocol.CodeConflict, "no free endpoint id for host %q: %s to %s-%d are taken", req.Hostname, base, base, maxSuffix)
}

// endpointID is "<client>-<hostname>-<4 hex digits of the instance id's
// hash>", the hostname lowercased with every run of characters other than
// a-z and 0-9 turned into one "-".
func endpointID(client, hostname, instanceID string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(hostname) {
		if b.Len() >= maxHostPart {
			break
		}
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(c)
			continue
		}
		dash = true
	}
	host := b.String()
	if host == "" {
		host = "host"
	}
	h := sha256.Sum256([]byte(instanceID))
	return client + "-" + host + "-" + hex.EncodeToString(h[:2])
}

// tokenBucket is a rate limiter: it holds up to burst tokens, refilled at
// rate per second, and every allowed request takes one.
type tokenBucket struct {
	burst, rate float64
	now         func() time.Time

	mu     sync.Mutex // guards tokens and last
	tokens float64
	last   time.Time
}

func newTokenBucket(burst, rate float64, now func() time.Time) *tokenBucket {
	return &tokenBucket{burst: burst, rate: rate, now: now, tokens: burst, last: now()}
}

// take takes a token if there is one; otherwise it says how long until
// there is.
func (b *tokenBucket) take() (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
