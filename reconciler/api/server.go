package api

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
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

	// ClientSnapshot is Snapshot for one client's endpoints.
	ClientSnapshot(ctx context.Context, client string, now time.Time) (*protocol.Snapshot, error)
	// AuditFor returns up to limit audit entries with id greater than
	// afterID, oldest first, for a reader limited to clients (every client
	// when empty): their entries, and the entries without a client that
	// concern every client (the whole fleet's revisions, restores).
	AuditFor(ctx context.Context, afterID int64, limit int, clients []string) ([]protocol.AuditEntry, error)
	// Backup returns a consistent copy of the store, of one moment, for
	// reading, with its size in bytes.
	Backup(ctx context.Context) (io.ReadCloser, int64, error)

	// Endpoints lists the enrolled endpoints, revoked ones too, of clients
	// (every client when empty).
	Endpoints(ctx context.Context, clients []string) ([]store.EndpointRecord, error)
	// RevokeEndpoint revokes an endpoint; DeleteEndpoint deletes it. Both
	// return its enrollment and record who did it (a token's name).
	RevokeEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error)
	DeleteEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error)

	// CreateToken stores a new admin API token; a name taken is
	// store.ErrConflict.
	CreateToken(ctx context.Context, t store.Token) error
	// Tokens returns every token, revoked ones too.
	Tokens(ctx context.Context) ([]store.Token, error)
	// RevokeToken revokes a token and returns it.
	RevokeToken(ctx context.Context, name, by string, at time.Time) (store.Token, error)
	// TokenUsed records when a token was last accepted.
	TokenUsed(ctx context.Context, name string, at time.Time) error

	// CreateEnrollToken stores a new enrollment token and returns it with
	// its id; a name taken is store.ErrConflict.
	CreateEnrollToken(ctx context.Context, t store.EnrollToken) (store.EnrollToken, error)
	// EnrollTokens returns every enrollment token, revoked ones too.
	EnrollTokens(ctx context.Context) ([]store.EnrollToken, error)
	// EnrollTokenByHash returns the enrollment token whose secret hashes
	// to hash.
	EnrollTokenByHash(ctx context.Context, hash []byte) (store.EnrollToken, error)
	// RevokeEnrollToken revokes an enrollment token and returns it.
	RevokeEnrollToken(ctx context.Context, id int64, by string, at time.Time) (store.EnrollToken, error)
}

// Config is what a Server needs. Store, SigningKey, Events, Status and
// Registerer are required; the rest have defaults.
type Config struct {
	Store Store
	// Secrets are the secrets file's; nil without one (admin tokens and
	// enrollment tokens are then all in the store, and webhooks are
	// refused).
	Secrets *Secrets
	// SigningKey is the controller's public job-signing key, handed to
	// agents at enrollment.
	SigningKey ed25519.PublicKey
	// Events are called after a successful write.
	Events Events
	// Status builds the admin status document served at /v1/status.
	Status func(ctx context.Context) (*protocol.Status, error)
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
	// Releases are the agent releases served to agents; nil serves none.
	Releases Releases
	// Logger logs internal errors, enrollments, token and endpoint
	// management, and refused enrollments and admin tokens (default
	// slog.Default()).
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
	// Removed: an endpoint was revoked or deleted; its client's figures
	// change.
	Removed(ctx context.Context, client, endpoint string)
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
	// were authenticated against (cachedEnrollment values), so the store
	// is asked once per endpoint. Unknown ids are not cached. An
	// enrollment changes only through this server: enrolling stores it
	// here, revoking stores it revoked, deleting stores a tombstone. Those
	// writes use Store after the store committed, and the read path only
	// LoadOrStore, so an enrollment read from the store before a
	// revocation can never replace the revoked one (see enrollment).
	enrolled sync.Map
	// tokens are the admin API's stored tokens.
	tokens tokenSet
	// overridden holds, by endpoint id, the label keys whose reported
	// value its enrollment labels last replaced, as labelsOverridden
	// logged them.
	overridden sync.Map
	// enrollments counts new endpoints by how they enrolled.
	enrollments *prometheus.CounterVec
	// hookFailures counts failed job scripts (hooks.go).
	hookFailures *prometheus.CounterVec

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New checks cfg, fills in defaults and registers the package's collectors:
//
//   - patchline_agent_requests_total{route, code}
//   - patchline_agent_request_duration_seconds{route}
//   - patchline_longpolls_waiting
//   - patchline_enroll_failures_total{reason}
//   - patchline_enrollments_total{method}
//   - patchline_hook_failures_total{hook}
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
		cfg:          cfg,
		log:          cfg.Logger,
		mux:          http.NewServeMux(),
		limits:       defaultLimits,
		admission:    newAdmission(maxUnauthenticated, maxUnauthenticatedPerAddr),
		enrolls:      newEnrollLimits(cfg.EnrollRate, cfg.Now),
		refusals:     newRefusals(cfg.Logger, cfg.Now),
		tokens:       tokenSet{store: cfg.Store},
		hookFailures: newHookFailures(),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchline_enrollments_total",
			Help: "Endpoints enrolled, by method: secret (the client's secret from the secrets file) or token (an enrollment token).",
		}, []string{"method"}),
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
	for _, m := range []string{enrollBySecret, enrollByToken} {
		s.enrollments.WithLabelValues(m)
	}
	for _, h := range []string{"pre", "post"} {
		s.hookFailures.WithLabelValues(h)
	}
	for _, c := range append([]prometheus.Collector{s.requests, s.duration, waiting, s.enrollments, s.hookFailures}, s.refusals.collectors()...) {
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
	if cfg.Secrets == nil {
		cfg.Secrets = &Secrets{}
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
	s.handle("GET "+protocol.ReleasesPath+"{version}/{name}", s.agent(s.release))
	// The admin routes, each with the token scope it needs.
	s.handle("GET /v1/status", s.admin(protocol.ScopeRead, s.status))
	s.handle("GET /v1/state", s.admin(protocol.ScopeRead, s.state))
	s.handle("GET /v1/audit", s.admin(protocol.ScopeRead, s.audit))
	s.handle("GET "+protocol.PathEndpoints, s.admin(protocol.ScopeRead, s.listEndpoints))
	s.handle("GET /v1/backup", s.admin(protocol.ScopeBackup, s.backup))
	s.handle("POST "+protocol.PathEndpointRevoke, s.admin(protocol.ScopeAdmin, s.revokeEndpoint))
	s.handle("DELETE "+protocol.PathEndpoint, s.admin(protocol.ScopeAdmin, s.deleteEndpoint))
	s.handle("GET "+protocol.PathTokens, s.admin(protocol.ScopeAdmin, s.listTokens))
	s.handle("POST "+protocol.PathTokens, s.admin(protocol.ScopeAdmin, s.createToken))
	s.handle("DELETE "+protocol.PathToken, s.admin(protocol.ScopeAdmin, s.revokeToken))
	s.handle("GET "+protocol.PathEnrollTokens, s.admin(protocol.ScopeAdmin, s.listEnrollTokens))
	s.handle("POST "+protocol.PathEnrollTokens, s.admin(protocol.ScopeAdmin, s.createEnrollToken))
	s.handle("DELETE "+protocol.PathEnrollToken, s.admin(protocol.ScopeAdmin, s.revokeEnrollToken))
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
