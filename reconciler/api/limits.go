package api

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/patchline/patchline/protocol"
)

// What one request may cost the server. A caller that has not proved who
// it is (an enrollment before its secret is checked, a webhook before its
// signature is) gets the least: a small body, a short deadline to send it,
// and a few places shared with every other such caller.
const (
	// maxHeaderBytes bounds a request's headers; an agent's, an admin's
	// and a forge's are well under a kilobyte.
	maxHeaderBytes = 64 << 10
	// maxEnrollBody bounds an enrollment: credentials of at most 512
	// characters, a hostname, an OS and a few labels.
	maxEnrollBody = 64 << 10
	// maxWebhookBody bounds a webhook. Only its signature is used (what
	// the controller fetches comes from Git), and a push event is a few
	// kilobytes; a larger one is refused and the next poll fetches.
	maxWebhookBody = 1 << 20
	// maxUnauthenticated is how many requests may read their bodies at
	// once before proving who sent them; maxUnauthenticatedPerAddr how
	// many of those may come from one source address: a quarter, so one
	// address cannot take the places every other caller needs, while a
	// site behind one NAT address whose machines enroll together (or the
	// simulator's agents) rarely meets it, since a place is held only
	// while a body arrives.
	maxUnauthenticated        = 256
	maxUnauthenticatedPerAddr = 64
	// minAnswerRate is the slowest transfer a large answer (a backup, a
	// state export) is given time for: its write deadline is the usual
	// one plus its size at this rate.
	minAnswerRate = 128 << 10 // bytes per second, about 1 Mbit/s
	// backupPrepare is how long the store may take to copy itself before
	// a backup's size is known.
	backupPrepare = 10 * time.Minute
)

// limits are the server's deadlines. Tests shorten them; the controller
// runs with defaultLimits.
type limits struct {
	// readHeader bounds sending a request's headers.
	readHeader time.Duration
	// request bounds a request from its first byte to its answer's last:
	// it is the server's read and write timeout both, so a handler that
	// runs past its read deadline (where the server's background read
	// would cancel its context) could not have answered anyway. Routes
	// that answer later by design move both deadlines (the long-poll,
	// the backup, the state export).
	request time.Duration
	// idle closes a kept-alive connection that carries no request.
	// Agents long-poll back to back, so theirs are never idle this long.
	idle time.Duration
	// unauthenticatedBody bounds sending the body of a request that has
	// not proved who sent it.
	unauthenticatedBody time.Duration
}

// defaultLimits: an 8 MiB report is read in a minute at about 1 Mbit/s;
// an enrollment or a webhook is sent in 10 s from anywhere that is not
// stalling on purpose.
var defaultLimits = limits{
	readHeader:          10 * time.Second,
	request:             time.Minute,
	idle:                2 * time.Minute,
	unauthenticatedBody: 10 * time.Second,
}

// HTTPServer returns the http.Server that serves the API with its limits:
// deadlines to send headers, to make a request and answer it, and for an
// idle connection; a bound on header size. The caller serves it on its
// listener and, on shutdown, calls Drain before its Shutdown.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.limits.readHeader,
		ReadTimeout:       s.limits.request,
		WriteTimeout:      s.limits.request,
		IdleTimeout:       s.limits.idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// extendDeadlines gives the request d more than its usual time, from now,
// to answer: both its deadlines move (see limits.request). Errors are
// ignored: a writer without deadlines (a test's recorder) has no
// connection to hold, and a closed connection fails the answer anyway.
func (s *Server) extendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	at := time.Now().Add(s.limits.request + d)
	_ = rc.SetReadDeadline(at)
	_ = rc.SetWriteDeadline(at)
}

// sizeAllowance is the time an answer of size bytes takes at
// minAnswerRate.
func sizeAllowance(size int64) time.Duration {
	return time.Duration(float64(size) / minAnswerRate * float64(time.Second))
}

// admit lets a request that has not proved who sent it (an enrollment, a
// webhook) read its body: at most maxBody bytes (a larger Content-Length
// is refused at once), sent within limits.unauthenticatedBody, while the
// request holds one of the places such requests share. When one source
// address holds maxUnauthenticatedPerAddr of them it gets a 429, when all
// are taken a 503, both with Retry-After.
//
// The caller calls done once the body is read, or reading it failed. done
// frees the place; when the read succeeded (ok), it also gives the
// connection its usual deadline for the work that follows. Otherwise the
// short deadline stays: the server does not wait for the rest of a body
// it refused, and closes the connection after the answer.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, addr netip.Addr, maxBody int64) (done func(ok bool), err error) {
	if r.ContentLength > maxBody {
		refuseUnread(w)
		return nil, errorf(protocol.CodeTooLarge, "request body is over %d bytes", maxBody)
	}
	switch s.admission.enter(addr) {
	case addrFull:
		refuseUnread(w)
		return nil, &apiError{code: protocol.CodeRateLimited, msg: "too many requests from your address at once; retry later", retryAfter: time.Second}
	case allFull:
		refuseUnread(w)
		return nil, &apiError{code: protocol.CodeUnavailable, msg: "too many requests without credentials at once; retry later", retryAfter: time.Second}
	}
	rc := http.NewResponseController(w)
	// Errors are ignored as in extendDeadlines.
	_ = rc.SetReadDeadline(time.Now().Add(s.limits.unauthenticatedBody))
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	return func(ok bool) {
		s.admission.leave(addr)
		if ok {
			_ = rc.SetReadDeadline(time.Now().Add(s.limits.request))
		}
	}, nil
}

// refuseUnread is for a request refused without its body being read: the
// server then neither waits for the body (it would read up to 256 KiB of
// it, for as long as the request's deadline allows, to keep the
// connection) nor keeps the connection; it answers and closes. Errors are
// ignored as in extendDeadlines.
func refuseUnread(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// admission counts the requests reading a body before they proved who
// sent them, in all and by source address.
type admission struct {
	max, maxPerAddr int

	mu    sync.Mutex // guards total and byAddr
	total int
	// byAddr holds only addresses with a request in progress, so it
	// never has more than max entries.
	byAddr map[netip.Addr]int
}

func newAdmission(max, maxPerAddr int) *admission {
	return &admission{max: max, maxPerAddr: maxPerAddr, byAddr: make(map[netip.Addr]int)}
}

// admitted is what admission.enter decided.
type admitted int

const (
	in       admitted = iota // the request holds a place; call leave
	addrFull                 // its address holds maxPerAddr places
	allFull                  // every place is taken
)

// enter takes a place for a request from addr, if there is one.
func (a *admission) enter(addr netip.Addr) admitted {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.byAddr[addr] >= a.maxPerAddr:
		return addrFull
	case a.total >= a.max:
		return allFull
	}
	a.total++
	a.byAddr[addr]++
	return in
}

// leave frees the place a request from addr took.
func (a *admission) leave(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.byAddr[addr]--; a.byAddr[addr] <= 0 {
		delete(a.byAddr, addr)
	}
}

// sourceAddr is the address a request came from, as the limits count it:
// the connection's remote IP, never a header a client or proxy sets
// (X-Forwarded-For), and an IPv6 address by its /64, which one host or
// site usually holds whole. Behind a reverse proxy every request counts
// against the proxy's address. A remote address that is not an IP (none
// on a real listener) counts as the zero address.
func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
