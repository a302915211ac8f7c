// Package faultproxy is an HTTP proxy for fault-injection tests: it stands
// on loopback between agents and the controller and, request by request,
// does what a Rule says — forward, delay, drop the request, drop the
// answer, send a late duplicate, or rewrite the answer's body. Chaos makes
// such a Rule from a seeded random generator, so a failing run can be
// replayed with the same seed.
//
// Dropping cuts the client's connection without an answer, which is what
// an agent sees when a network or a crashing controller loses a request.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxBody bounds the request and answer bodies the proxy buffers; it is
// above the controller's own request limit so oversized requests still
// reach the controller.
const maxBody = 32 << 20

// Request is what a Rule sees of one request.
type Request struct {
	Method string
	// Path is the URL path, without the query.
	Path   string
	Header http.Header
	Body   []byte
}

// Action is what the proxy does with one request. The zero Action forwards
// it unchanged.
type Action struct {
	// Delay holds the request this long before forwarding it, so requests
	// overtake each other.
	Delay time.Duration
	// DropRequest cuts the client's connection without forwarding.
	DropRequest bool
	// DropResponse forwards the request, then cuts the client's connection
	// instead of answering: the controller acted, the client never learns.
	DropResponse bool
	// Duplicate sends a second copy of the request DuplicateAfter after the
	// first has been answered; the client gets the first answer only.
	Duplicate      bool
	DuplicateAfter time.Duration
	// Rewrite, when set, replaces the body of the answer.
	Rewrite func(status int, body []byte) []byte
}

// Rule decides the Action for a request. The proxy calls it from many
// goroutines at once.
type Rule func(Request) Action

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	client *http.Client

	// ctx ends late duplicates and delays when the proxy closes.
	ctx    context.Context
	cancel context.CancelFunc
	// late counts the duplicates still to be sent, so Close can wait for
	// them.
	late sync.WaitGroup

	mu   sync.RWMutex // guards rule
	rule Rule
}

// Start listens on a free loopback port and forwards to target (a base URL
// such as http://127.0.0.1:8420) until Close.
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want http://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: u,
		ln:     ln,
		// No client timeout: long-polls are held as long as the
		// controller holds them; the inbound request's context ends them.
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}},
		ctx:    ctx,
		cancel: cancel,
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's base URL, to give agents instead of the controller's.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRule replaces the rule; nil forwards everything unchanged.
func (p *Proxy) SetRule(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = r
}

// Close stops the proxy, cuts open connections and waits for pending late
// duplicates to give up.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.srv.Close()
	p.late.Wait()
	p.client.CloseIdleConnections()
	return err
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	p.mu.RLock()
	rule := p.rule
	p.mu.RUnlock()
	target := p.target
	var act Action
	if rule != nil {
		act = rule(Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	}
	if act.Delay > 0 && !sleep(r.Context(), act.Delay) {
		panic(http.ErrAbortHandler)
	}
	if act.DropRequest {
		// Aborting the handler closes the connection with no answer.
		panic(http.ErrAbortHandler)
	}
	status, header, respBody, err := p.forward(r.Context(), target, r, body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if act.Duplicate {
		p.late.Add(1)
		go func() {
			defer p.late.Done()
			if sleep(p.ctx, act.DuplicateAfter) {
				_, _, _, _ = p.forward(p.ctx, target, r, body)
			}
		}()
	}
	if act.DropResponse {
		panic(http.ErrAbortHandler)
	}
	if act.Rewrite != nil {
		respBody = act.Rewrite(status, respBody)
		header.Del("Content-Length")
	}
	for k, vs := range header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

// forward sends one copy of r (with body) to target and reads the whole
// answer.
func (p *Proxy) forward(ctx context.Context, target *url.URL, r *http.Request, body []byte) (int, http.Header, []byte, error) {
	u := *target
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Connection")
	resp, err := p.client.Do(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, err
	}
	h := resp.Header.Clone()
	h.Del("Connection")
	return resp.StatusCode, h, b, nil
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Chaos describes random misbehaviour: each request independently gets
// each fault with the given probability (0 to 1).
type Chaos struct {
	// Seed makes the sequence of decisions repeatable.
	Seed         uint64
	DropRequest  float64
	DropResponse float64
	Duplicate    float64
	Delay        float64
	// MaxDelay bounds delays and the lateness of duplicates.
	MaxDelay time.Duration
}

// Rule returns the Rule that applies c. Decisions come from one seeded
// generator; under concurrency their order follows the arrival order.
func (c Chaos) Rule() (Rule, error) {
	for _, pr := range []float64{c.DropRequest, c.DropResponse, c.Duplicate, c.Delay} {
		if pr < 0 || pr > 1 {
			return nil, errors.New("faultproxy: chaos probabilities must be between 0 and 1")
		}
	}
	var mu sync.Mutex // guards rng
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x5eed))
	return func(Request) Action {
		mu.Lock()
		defer mu.Unlock()
		var a Action
		a.DropRequest = rng.Float64() < c.DropRequest
		a.DropResponse = rng.Float64() < c.DropResponse
		if rng.Float64() < c.Duplicate {
			a.Duplicate = true
			a.DuplicateAfter = randDuration(rng, c.MaxDelay)
		}
		if rng.Float64() < c.Delay {
			a.Delay = randDuration(rng, c.MaxDelay)
		}
		return a
	}, nil
}

func randDuration(rng *rand.Rand, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(max) + 1))
}
