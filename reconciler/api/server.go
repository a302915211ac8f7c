package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Store is what the API reads and writes in the controller's store
// (store/sqlite satisfies it). Errors wrap store.ErrNotFound,
// store.ErrConflict or store.ErrInvalid where the API answers 404, 409 or
// 400.
type Store interface {
	// Enroll records a new endpoint; an id already enrolled is
	// store.ErrConflict.
	Enroll(ctx context.Context, e store.Enrollment) error
	// EndpointByID returns an endpoint's enrollment (for the node key check).
	EndpointByID(ctx context.Context, id string) (store.Enrollment, error)
	// ReplaceInventory stores an endpoint's report in place of the previous
	// one; a report older than the stored one is store.ErrConflict.
	ReplaceInventory(ctx context.Context, r store.Report) error
	// Snapshot returns the reported state of every endpoint (GET /v1/state).
	Snapshot(ctx context.Context, now time.Time) (*protocol.Snapshot, error)
	// EndpointSnapshot returns the reported state of one endpoint.
	EndpointSnapshot(ctx context.Context, id string, now time.Time) (*protocol.Endpoint, error)
	// DueJobs returns an endpoint's jobs its agent should run now.
	DueJobs(ctx context.Context, endpoint string, now time.Time) ([]store.Job, error)
	// LeaseJob marks a job handed to its agent until the given time.
	LeaseJob(ctx context.Context, id string, until time.Time) error
	// RecordResult records the outcome of a job.
	RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error)
	// RaiseJobSeq makes the endpoint's next job numbered above seq.
	RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error
	// Audit returns up to limit audit entries with id greater than
	// afterID, oldest first.
	Audit(ctx context.Context, afterID int64, limit int) ([]protocol.AuditEntry, error)
	// Backup returns a consistent copy of the store, of one moment, for
	// reading, with its size in bytes.
	Backup(ctx context.Context) (io.ReadCloser, int64, error)
}

// Config is what a Server needs. Store, Secrets, SigningKey, Events, Status
// and Registerer are required; the rest have defaults.
type Config struct {
	Store   Store
	Secrets *Secrets
	// SigningKey is the controller's public job-signing key, handed to
	// agents at enrollment.
	SigningKey ed25519.PublicKey
	// Events are called after a successful write.
	Events Events
	// Status builds the admin status document served at /v1/status.
	Status func(ctx context.Context) (any, error)
	// Ready says why the controller cannot take traffic now (GET
	// /readyz answers 503 with it), or nil; nil Ready is always ready.
	Ready func() error
	// Registerer takes this package's collectors.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxWait caps a long-poll's ?wait= (default 60s).
	MaxWait time.Duration
	// Lease is how long a delivered job is leased before it is offered
	// again (default 10m).
	Lease time.Duration
	// EnrollRate is how many enrollments per second the controller
	// accepts once the burst is spent (default 10); the burst is 50 or
	// EnrollRate, whichever is larger. One source address, or one client,
	// gets half of both.
	EnrollRate float64
	// Logger logs internal errors, enrollments, and refused enrollments
	// and admin tokens (default slog.Default()).
	Logger *slog.Logger
}

// Events are the controller's hooks, called after a write succeeded. They
// run on the request's goroutine and should only schedule work (a keyed
// queue add), not do it.
type Events interface {
	// Enrolled: a new endpoint enrolled.
	Enrolled(ctx context.Context, client, endpoint string)
	// Reported: an endpoint's inventory was replaced.
	Reported(ctx context.Context, client, endpoint string)
	// ResultRecorded: a job of ring was recorded with results (not for
	// duplicates).
	ResultRecorded(ctx context.Context, client, endpoint, job, ring string, results []store.UpdateResult)
	// GitHook: a webhook from the fleet repo's forge verified; fetch now.
	GitHook(ctx context.Context)
}

// Defaults of Config.
const (
	DefaultMaxWait = 60 * time.Second
	DefaultLease   = 10 * time.Minute
)

// Server serves the API. Build it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	waiters *waiters
	limits  limits
	// admission caps the requests without credentials reading a body.
	admission *admission
	enrolls   enrollLimits
	refusals  *refusals
	// enrolled caches, by endpoint id, the enrollments agent requests
	// were authenticated against (store.Enrollment values). Every agent
	// request is authenticated, and an enrollment never changes once
	// stored (nothing re-keys, moves or removes an endpoint), so the store
	// is asked once per endpoint. Unknown ids are not cached. A feature
	// that revokes endpoints must delete them here too.
	enrolled sync.Map

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New checks cfg, fills in defaults and registers the package's collectors:
//
//   - patchline_agent_requests_total{route, code}
//   - patchline_agent_request_duration_seconds{route}
//   - patchline_longpolls_waiting
//   - patchline_enroll_failures_total{reason}
//   - patchline_admin_auth_failures_total
//
// route is the route's pattern (as "POST /v1/jobs/{id}/result"), never a raw
// path, so no endpoint or job id becomes a label.
func New(cfg Config) (*Server, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		mux:       http.NewServeMux(),
		limits:    defaultLimits,
		admission: newAdmission(maxUnauthenticated, maxUnauthenticatedPerAddr),
		enrolls:   newEnrollLimits(cfg.EnrollRate, cfg.Now),
		refusals:  newRefusals(cfg.Logger, cfg.Now),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchline_agent_requests_total",
			Help: "API requests answered, by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "patchline_agent_request_duration_seconds",
			Help: "Time to answer an API request, by route pattern; long-polls included.",
			// Up to two minutes, so long-polls land in a bucket.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route"}),
	}
	waiting := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchline_longpolls_waiting",
		Help: "Agent long-polls waiting for a job.",
	})
	s.waiters = newWaiters(waiting)
	for _, c := range append([]prometheus.Collector{s.requests, s.duration, waiting}, s.refusals.collectors()...) {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	s.routes()
	return s, nil
}

// check returns an error naming the first field of cfg that is required
// and missing, or out of range.
func (cfg *Config) check() error {
	switch {
	case cfg.Store == nil:
		return errors.New("api: a store is required")
	case cfg.Secrets == nil:
		return errors.New("api: secrets are required")
	case len(cfg.SigningKey) != ed25519.PublicKeySize:
		return fmt.Errorf("api: signing key has %d bytes, want an ed25519 public key of %d", len(cfg.SigningKey), ed25519.PublicKeySize)
	case cfg.Events == nil:
		return errors.New("api: events are required")
	case cfg.Status == nil:
		return errors.New("api: a status function is required")
	case cfg.Registerer == nil:
		return errors.New("api: a Prometheus registerer is required")
	case cfg.MaxWait < 0 || cfg.Lease < 0:
		return errors.New("api: MaxWait and Lease must not be negative")
	}
	return nil
}

// setDefaults fills in the optional fields of cfg left zero; an
// EnrollRate below zero gets the default too.
func (cfg *Config) setDefaults() {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.EnrollRate <= 0 {
		cfg.EnrollRate = enrollRate
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Ready == nil {
		cfg.Ready = func() error { return nil }
	}
}

func (s *Server) routes() {
	s.handle("POST "+protocol.PathEnroll, s.enroll)
	s.handle("POST "+protocol.PathReport, s.agent(s.report))
	s.handle("GET "+protocol.PathJobs, s.agent(s.jobs))
	s.handle("POST "+protocol.PathResult, s.agent(s.result))
	s.handle("GET /v1/status", s.admin(s.status))
	s.handle("GET /v1/state", s.admin(s.state))
	s.handle("GET /v1/audit", s.admin(s.audit))
	s.handle("GET /v1/backup", s.admin(s.backup))
	s.handle("POST /v1/hooks/git", s.gitHook)
	// The probes skip the error envelope and the request metrics.
	s.mux.HandleFunc("GET "+PathHealthz, Healthz)
	s.mux.Handle("GET "+PathReadyz, Readyz(s.cfg.Ready))
	// Everything else gets the error envelope too, not the mux's plain text.
	s.handle("/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(protocol.CodeNotFound, "no route %s %s", r.Method, r.URL.Path)
	})
}

// Handler returns the API's handler. Serve it with HTTPServer, which
// adds the connection limits the routes rely on.
func (s *Server) Handler() http.Handler { return s.mux }

// handlerFunc is a route's handler: it writes the answer itself on success
// and returns an error otherwise.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h for pattern, with its metrics and error answers.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		if err := h(rec, r); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				s.log.ErrorContext(r.Context(), "request failed", "route", pattern, "err", err)
				ae = errorf(protocol.CodeInternal, "internal error; see the controller's log")
			}
			if ae.retryAfter > 0 {
				rec.Header().Set("Retry-After", strconv.Itoa(int((ae.retryAfter+time.Second-1)/time.Second)))
			}
			writeError(rec, ae)
		}
		s.requests.WithLabelValues(pattern, strconv.Itoa(rec.code())).Inc()
		s.duration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
	})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the connection's writer, whose
// deadlines routes move.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

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
		return h(w, r, ep)
	}
}

// enrollment returns the enrollment of endpoint id, from the cache when it
// is there.
func (s *Server) enrollment(ctx context.Context, id string) (store.Enrollment, error) {
	if ep, ok := s.enrolled.Load(id); ok {
		return ep.(store.Enrollment), nil
	}
	ep, err := s.cfg.Store.EndpointByID(ctx, id)
	if err != nil {
		return store.Enrollment{}, err
	}
	s.enrolled.Store(id, ep)
	return ep, nil
}

// admin checks the admin token; a refusal is logged and counted.
func (s *Server) admin(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		token, ok := bearer(r)
		switch {
		case !ok:
			s.refusals.adminToken(r, "missing")
		case !s.cfg.Secrets.adminOK(token):
			s.refusals.adminToken(r, "wrong")
		default:
			return h(w, r)
		}
		return errorf(protocol.CodeUnauthorized, "missing or wrong admin token")
	}
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
