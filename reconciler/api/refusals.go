package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
)

// Why an enrollment was refused: the values of the reason label of
// patchline_enroll_failures_total, a fixed set.
const (
	// reasonMalformed: the body is not an enrollment (not JSON, too
	// large, a field missing or out of bounds).
	reasonMalformed = "malformed"
	// reasonBusy: too many requests without credentials at once, from
	// the address or in all.
	reasonBusy = "busy"
	// reasonUnknownClient: no enrollment secret is configured for the
	// client named.
	reasonUnknownClient = "unknown_client"
	// reasonBadSecret: the secret is not the client's.
	reasonBadSecret = "bad_secret"
	// reasonAddressLimit, reasonClientLimit, reasonGlobalLimit: the
	// source address's, the client's or the controller's enrollment
	// budget is spent.
	reasonAddressLimit = "rate_limited_address"
	reasonClientLimit  = "rate_limited_client"
	reasonGlobalLimit  = "rate_limited_global"
	// reasonTokenUnknown: the secret looks like an enrollment token
	// (protocol.EnrollTokenPrefix) but is none. The others: the token is
	// another client's, revoked, expired or used up.
	reasonTokenUnknown     = "token_unknown"
	reasonTokenOtherClient = "token_other_client"
	reasonTokenRevoked     = "token_revoked"
	reasonTokenExpired     = "token_expired"
	reasonTokenUsedUp      = "token_used_up"
)

var enrollFailureReasons = []string{
	reasonMalformed, reasonBusy, reasonUnknownClient, reasonBadSecret,
	reasonAddressLimit, reasonClientLimit, reasonGlobalLimit,
	reasonTokenUnknown, reasonTokenOtherClient, reasonTokenRevoked, reasonTokenExpired, reasonTokenUsedUp,
}

// How many refusals are logged: a burst, then a steady rate. A flood
// would otherwise be a log line per request; the counters count every
// refusal, and each line says how many went unlogged before it.
const (
	refusalLogBurst = 20
	refusalLogRate  = 1 // per second
)

// refusals logs and counts failed enrollments and failed admin token
// checks. A log line names the source address, and the client when the
// client is one the controller knows, or a token's name, never a secret
// or token.
type refusals struct {
	log    *slog.Logger
	enroll *prometheus.CounterVec
	admin  prometheus.Counter
	// lines rations the log lines.
	lines *tokenBucket
	// unlogged counts the refusals not logged since the last line.
	unlogged atomic.Int64
}

func newRefusals(log *slog.Logger, now func() time.Time) *refusals {
	rf := &refusals{
		log: log,
		enroll: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchline_enroll_failures_total",
			Help: "Enrollments refused, by reason: malformed, busy, unknown_client, bad_secret, rate_limited_address, rate_limited_client, rate_limited_global, token_unknown, token_other_client, token_revoked, token_expired, token_used_up.",
		}, []string{"reason"}),
		admin: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patchline_admin_auth_failures_total",
			Help: "Admin API requests refused for a missing, unknown or revoked token.",
		}),
		lines: newTokenBucket(refusalLogBurst, refusalLogRate, now),
	}
	// Every reason is exported from the start, at zero, so a rate or an
	// alert sees the first refusal.
	for _, reason := range enrollFailureReasons {
		rf.enroll.WithLabelValues(reason)
	}
	return rf
}

func (rf *refusals) collectors() []prometheus.Collector {
	return []prometheus.Collector{rf.enroll, rf.admin}
}

// enrollment records an enrollment refused for reason; client is the
// client it named when the controller knows that client, or empty.
func (rf *refusals) enrollment(r *http.Request, reason, client string) {
	rf.enroll.WithLabelValues(reason).Inc()
	attrs := []any{"reason", reason, "addr", remoteIP(r)}
	if client != "" {
		attrs = append(attrs, "client", client)
	}
	rf.logLine(r.Context(), "enrollment refused", attrs...)
}

// adminToken records an admin request refused because its token was
// missing, wrong (unknown) or revoked (reason); name is a revoked token's
// name (never its secret), empty otherwise.
func (rf *refusals) adminToken(r *http.Request, reason, name string) {
	rf.admin.Inc()
	attrs := []any{"reason", reason, "route", r.Pattern, "addr", remoteIP(r)}
	if name != "" {
		attrs = append(attrs, "token", name)
	}
	rf.logLine(r.Context(), "admin token refused", attrs...)
}

// scope records an admin request refused because the token named name
// does not hold scope. It is logged, not counted: the token is genuine.
func (rf *refusals) scope(r *http.Request, name string, scope protocol.Scope) {
	rf.logLine(r.Context(), "admin token lacks scope", "token", name, "scope", string(scope), "route", r.Pattern, "addr", remoteIP(r))
}

// logLine logs a refusal at warning level, when the ration allows.
func (rf *refusals) logLine(ctx context.Context, msg string, attrs ...any) {
	if ok, _ := rf.lines.take(); !ok {
		rf.unlogged.Add(1)
		return
	}
	if n := rf.unlogged.Swap(0); n > 0 {
		attrs = append(attrs, "unlogged_before", n)
	}
	rf.log.WarnContext(ctx, msg, attrs...)
}

// remoteIP is the IP of a request's connection, without its port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
