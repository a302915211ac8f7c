package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/protocol"
)

// maxRetryAfter bounds how long a Retry-After header can park a request, so
// a buggy or hostile answer cannot stop the agent for days.
const maxRetryAfter = 10 * time.Minute

// attemptTimeout bounds one HTTP attempt; it is above the long-poll wait so a
// held poll is not cut short.
const attemptTimeout = pollWait + 60*time.Second

// maxErrorBody bounds how much of an error answer the client reads.
const maxErrorBody = 64 << 10

// client talks the agent API to the controller. Every call goes through a
// retrying HTTP client; because that client re-sends POSTs, every write the
// agent makes is idempotent on the controller side (enroll by instance id
// and node key, result by job id, report is a replace).
//
// The controller may be several replicas on one store, each with a URL of
// its own. Calls go to one of them, the current one, until an attempt
// finds it unreachable (see unreachable); the retry loop then moves the
// client to the next URL, in the order given, wrapping around, and the
// next attempt and every later call go there. Any replica can serve any
// call: they share the store, so the node key is known to all of them,
// and they sign jobs with one key, the one the agent pinned.
type client struct {
	// controllers are the controller's URLs, without a trailing slash.
	controllers []string
	// current is the index in controllers of the URL calls go to. It
	// moves only forward (modulo len(controllers)), by compare-and-swap
	// from the index a failed attempt used, so attempts of concurrent
	// calls that fail on the same replica move the client once.
	current atomic.Int64
	http    *retryablehttp.Client
	log     *slog.Logger

	// endpoint and nodeKey authenticate calls after enrollment; they are
	// set once by the agent before any authenticated call and not changed.
	endpoint string
	nodeKey  string
}

// retryPolicy is the part of Config that shapes retries.
type retryPolicy struct {
	max     int
	waitMin time.Duration
	waitMax time.Duration
}

// newClient returns the client of the controller at controllers: one URL,
// or several separated by commas (see controllerURLs).
// userAgent names the agent and its version on every request, so the
// controller's logs and proxies can tell agent versions apart.
var userAgent = "patch-agent/" + buildinfo.Version()

func newClient(controllers string, insecure bool, roots *x509.CertPool, source netip.Addr, rp retryPolicy, log *slog.Logger) (*client, error) {
	bases, err := controllerURLs(controllers, insecure)
	if err != nil {
		return nil, err
	}
	hc := cleanhttp.DefaultPooledClient()
	hc.Timeout = attemptTimeout
	tr, ok := hc.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("controller %s: unexpected HTTP transport %T", controllers, hc.Transport)
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if source.IsValid() {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: source.AsSlice()}}
		tr.DialContext = d.DialContext
	}
	c := &client{controllers: bases, log: log}
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		Logger:       slogLeveled{log},
		RetryWaitMin: rp.waitMin,
		RetryWaitMax: rp.waitMax,
		RetryMax:     rp.max,
		CheckRetry:   c.checkRetry,
		Backoff:      c.backoff,
		PrepareRetry: c.prepareRetry,
		// Keep the last answer when retries run out so its error envelope
		// can be decoded into a protocol.Error.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	rc.RequestLogHook, rc.ResponseLogHook = logRefusedWrites(log, rp.max)
	c.http = rc
	return c, nil
}

// attemptKey holds, in the context of a request do sends, its
// *attemptState. retryablehttp runs the hooks, CheckRetry, Backoff and
// PrepareRetry of one request on the goroutine of its Do, one after the
// other, so the state needs no lock.
type attemptKey struct{}

// attemptState is what the retry loop of one request knows besides the
// request itself.
type attemptState struct {
	// attempt is the number of the attempt under way (0 for the first),
	// which retryablehttp gives only to the request hook.
	attempt int
	// replica is the index of the controller URL the attempt under way
	// was sent to.
	replica int
	// target is the request's path and query, to put after whichever
	// controller URL an attempt goes to.
	target string
}

// stateOf returns the attempt state in ctx, nil when there is none.
func stateOf(ctx context.Context) *attemptState {
	st, _ := ctx.Value(attemptKey{}).(*attemptState)
	return st
}

// pick returns the index and URL of the controller calls go to now.
func (c *client) pick() (int, string) {
	i := int(c.current.Load())
	return i, c.controllers[i]
}

// checkRetry is the package's checkRetry, plus the move to the next
// controller URL when the attempt found its replica unreachable.
func (c *client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	retry, rerr := checkRetry(ctx, resp, err)
	if st := stateOf(ctx); st != nil && unreachable(ctx, resp, err, retry) {
		c.moveOn(st.replica, resp, err)
	}
	return retry, rerr
}

// unreachable says whether an attempt's outcome shows that the replica it
// went to cannot answer: a transport failure worth retrying (the
// connection refused or reset, the replica gone in the middle of a
// long-poll, a TLS handshake that timed out, no answer within the
// attempt's time), or 502, 503 or 504, what a load balancer or proxy in
// front of a dead replica answers. Any other answer, a 4xx above all (a
// node key the controller does not know, a request it calls invalid),
// comes from a working controller and is its word: asking another
// replica would get the same one. A transport failure that retrying
// does not fix (a certificate the agent does not trust) is not a reason
// to move either: the operator must fix it.
func unreachable(ctx context.Context, resp *http.Response, err error, retry bool) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		return retry
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// moveOn makes the URL after failed the current one, unless another
// attempt already moved the client on from failed.
func (c *client) moveOn(failed int, resp *http.Response, err error) {
	n := len(c.controllers)
	if n == 1 {
		return
	}
	next := (failed + 1) % n
	if !c.current.CompareAndSwap(int64(failed), int64(next)) {
		return
	}
	why := []any{"from", c.controllers[failed], "to", c.controllers[next]}
	if err != nil {
		why = append(why, "err", err)
	} else {
		why = append(why, "status", resp.StatusCode)
	}
	c.log.Warn("controller unreachable; moving to the next controller URL", why...)
}

// prepareRetry points the next attempt of a request at the current
// controller URL when an attempt moved the client on since the request's
// last attempt.
func (c *client) prepareRetry(req *http.Request) error {
	st := stateOf(req.Context())
	if st == nil {
		return nil
	}
	i, base := c.pick()
	if i == st.replica {
		return nil
	}
	u, err := url.Parse(base + st.target)
	if err != nil {
		return fmt.Errorf("controller URL %s: %w", base, err)
	}
	// req is retryablehttp's copy for this attempt: its URL is replaced,
	// not changed, since the earlier attempt's request shares it.
	req.URL, req.Host = u, u.Host
	st.replica = i
	return nil
}

// backoff is jitterBackoff, except that a Retry-After is not honoured
// when the next attempt goes to another controller URL: it was the
// word of the replica (or the proxy in front of it) left behind.
func (c *client) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && resp.Request != nil {
		if st := stateOf(resp.Request.Context()); st != nil {
			if i, _ := c.pick(); i != st.replica {
				return fullJitter(lo, hi, attempt)
			}
		}
	}
	return jitterBackoff(lo, hi, attempt, resp)
}

// logRefusedWrites returns the hooks that log at WARN each write (a POST:
// enrollment, report, result) the controller answers with a 5xx, with
// how many retries it had and has left: a controller whose store fails
// (a full disk) shows in the agent's log while the agent keeps retrying,
// rather than only once the retries run out. The hooks run on the
// goroutine of the request's Do, one attempt after the other.
func logRefusedWrites(log *slog.Logger, maxRetries int) (retryablehttp.RequestLogHook, retryablehttp.ResponseLogHook) {
	onRequest := func(_ retryablehttp.Logger, req *http.Request, attempt int) {
		if st := stateOf(req.Context()); st != nil {
			st.attempt = attempt
		}
	}
	onResponse := func(_ retryablehttp.Logger, resp *http.Response) {
		req := resp.Request
		if resp.StatusCode < 500 || req == nil || req.Method != http.MethodPost {
			return
		}
		retry := 0
		if st := stateOf(req.Context()); st != nil {
			retry = st.attempt
		}
		left := max(maxRetries-retry, 0)
		msg := "controller refused a write; retrying"
		if left == 0 {
			msg = "controller refused a write; no retries left"
		}
		log.Warn(msg, "method", req.Method, "path", req.URL.Path, "status", resp.StatusCode, "retry", retry, "retries_left", left,
			"controller", req.URL.Scheme+"://"+req.URL.Host)
	}
	return onRequest, onResponse
}

// controllerURLs parses the controller's URLs: one, or several (one per
// replica) separated by commas, each checked by controllerURL. They are
// returned without a trailing slash, in the order given, which is the
// order calls try them in.
func controllerURLs(raw string, insecure bool) ([]string, error) {
	var bases []string
	seen := map[string]bool{}
	for _, one := range strings.Split(raw, ",") {
		one = strings.TrimSpace(one)
		if one == "" {
			return nil, fmt.Errorf("controller URLs %q: an empty URL; separate URLs with single commas", raw)
		}
		u, err := controllerURL(one, insecure)
		if err != nil {
			return nil, err
		}
		base := u.String()
		if seen[base] {
			return nil, fmt.Errorf("controller URLs %q: %s is given twice", raw, base)
		}
		seen[base] = true
		bases = append(bases, base)
	}
	return bases, nil
}

// controllerURL parses the controller's base URL and refuses plain HTTP
// unless the host is loopback or insecure is set: node keys and enrollment
// secrets travel in every request.
func controllerURL(raw string, insecure bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("controller URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !insecure && !netaddr.IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("controller URL %q: plain http is allowed only to a loopback host or with --insecure", raw)
		}
	default:
		return nil, fmt.Errorf("controller URL %q: scheme must be https (or http to a loopback host)", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("controller URL %q: no host", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// checkRetry decides whether an attempt is worth repeating: transport
// errors and 5xx are, 429 is, every other 4xx is final (protocol.Code.Retryable).
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		// The library's policy knows which transport errors are final
		// (bad certificate, bad scheme, too many redirects).
		return retryablehttp.ErrorPropagatedRetryPolicy(ctx, resp, err)
	}
	if resp.StatusCode < 400 {
		return false, nil
	}
	return protocol.CodeForStatus(resp.StatusCode).Retryable(), nil
}

// jitterBackoff is "full jitter" exponential backoff: a uniformly random
// wait between lo and lo·2^(attempt+1) (capped at hi). Without jitter every
// agent that saw the same controller restart would retry in the same
// instant, again and again. A Retry-After on 429 or 503 is honoured as a
// floor, with up to 10% added so agents told the same value spread out.
func jitterBackoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			d = clamp(d, lo, maxRetryAfter)
			return d + randDuration(d/10)
		}
	}
	return fullJitter(lo, hi, attempt)
}

// fullJitter returns a random duration in [lo, min(hi, lo·2^(attempt+1))]:
// retryablehttp counts the first retry as attempt 0, and even that one must
// be spread out.
func fullJitter(lo, hi time.Duration, attempt int) time.Duration {
	hi = max(hi, lo)
	// Doubling until the cap, rather than shifting, cannot overflow.
	ceil := lo
	for i := 0; i <= attempt && ceil < hi; i++ {
		ceil = max(ceil*2, ceil+1)
	}
	return lo + randDuration(min(ceil, hi)-lo)
}

// randDuration is uniform in [0, d].
func randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return min(max(d, lo), hi)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// do sends one API call. in, when not nil, is sent as JSON; out, when not
// nil, receives the JSON answer. A non-2xx answer becomes a *protocol.Error,
// from the envelope when the body has one and from the status otherwise.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	// path is already escaped (ResultPath of an escaped job id).
	st := &attemptState{target: path}
	if len(query) > 0 {
		st.target += "?" + query.Encode()
	}
	var base string
	st.replica, base = c.pick()
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		body = b
	}
	var reqBody any
	if body != nil {
		reqBody = body
	}
	ctx = context.WithValue(ctx, attemptKey{}, st)
	req, err := retryablehttp.NewRequestWithContext(ctx, method, base+st.target, reqBody)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if c.nodeKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.nodeKey)
		req.Header.Set(protocol.HeaderEndpoint, c.endpoint)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %w", method, path, decodeError(resp))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, protocol.MaxBodyBytes)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) *protocol.Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env protocol.ErrorBody
	if json.Unmarshal(b, &env) == nil && env.Error != nil && env.Error.Code != "" {
		return env.Error
	}
	msg := http.StatusText(resp.StatusCode)
	if s := strings.TrimSpace(string(b)); s != "" && len(s) < 200 {
		msg = s
	}
	return &protocol.Error{Code: protocol.CodeForStatus(resp.StatusCode), Message: msg}
}

// errorCode is the wire code of err, or "" when err carries none (a
// transport failure).
func errorCode(err error) protocol.Code {
	var we *protocol.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func (c *client) enroll(ctx context.Context, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	var resp protocol.EnrollResponse
	err := c.do(ctx, http.MethodPost, protocol.PathEnroll, nil, req, &resp)
	return resp, err
}

func (c *client) report(ctx context.Context, r protocol.Report) (protocol.ReportResponse, error) {
	var resp protocol.ReportResponse
	err := c.do(ctx, http.MethodPost, protocol.PathReport, nil, r, &resp)
	return resp, err
}

func (c *client) poll(ctx context.Context, wait time.Duration) ([]protocol.SignedJob, error) {
	var resp protocol.JobsResponse
	q := url.Values{"wait": {wait.String()}}
	if err := c.do(ctx, http.MethodGet, protocol.PathJobs, q, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Jobs, nil
}

func (c *client) result(ctx context.Context, r protocol.ResultRequest) (protocol.ResultResponse, error) {
	var resp protocol.ResultResponse
	err := c.do(ctx, http.MethodPost, protocol.ResultPath(url.PathEscape(r.Job)), nil, r, &resp)
	return resp, err
}

// slogLeveled adapts retryablehttp's leveled logger to slog, so retries show
// up in the agent's structured log instead of on stdout, with the error
// under the key "err" like every other Patchline log line (the library says
// "error").
type slogLeveled struct{ l *slog.Logger }

func (s slogLeveled) Error(msg string, kv ...any) { s.l.Error(msg, errKeys(kv)...) }
func (s slogLeveled) Info(msg string, kv ...any)  { s.l.Info(msg, errKeys(kv)...) }
func (s slogLeveled) Debug(msg string, kv ...any) { s.l.Debug(msg, errKeys(kv)...) }
func (s slogLeveled) Warn(msg string, kv ...any)  { s.l.Warn(msg, errKeys(kv)...) }

// errKeys returns the key-value list kv with every "error" key renamed
// "err". It copies kv, which is the caller's, only when it has one.
func errKeys(kv []any) []any {
	var out []any
	for i := 0; i < len(kv); i += 2 {
		if kv[i] != "error" {
			continue
		}
		if out == nil {
			out = slices.Clone(kv)
		}
		out[i] = "err"
	}
	if out == nil {
		return kv
	}
	return out
}

var _ retryablehttp.LeveledLogger = slogLeveled{}
