// Package adminclient talks to patchd's admin API (GET /v1/status,
// /v1/state, /v1/audit, /v1/backup, the endpoints and the tokens) with a
// token of that API and decodes its answers into package protocol's
// shapes. patchctl and the simulator use it, so neither links the
// controller to read what the controller says.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/protocol"
)

// Client is an admin API client of one controller, which may run as
// several replicas on one store.
//
// With several replicas, a call goes first to the replica the last call
// reached, then to the others in turn while the replica it tried was
// unreachable. A read (GET) moves to the next replica on any failure to
// reach one: a connection refused or cut, a timeout, or a 502, 503 or
// 504 (what a load balancer in front of a dead replica answers). A write
// moves only when its connection was never made (a dial error): once a
// write was sent, the replica may have carried it out before failing,
// and sending it to another would do it twice (a second token). Any
// other answer, a 4xx above all, is the controller's word and ends the
// call. A Client must not be copied after its first call.
type Client struct {
	// Base is the controller's URL, e.g. https://patchd.msp.example:8420,
	// or the URLs of its replicas separated by commas, in the order to
	// try them.
	Base string
	// Token is the bearer token: the secrets file's admin token or one
	// made with CreateToken.
	Token string
	// HTTP sends the requests (http.DefaultClient when nil).
	HTTP *http.Client

	// current is the index, among Base's URLs, of the replica the last
	// call reached: the next call tries it first.
	current atomic.Int64
}

// Get fetches path (with its query) and returns the body of a 200 answer;
// any other answer is an error carrying the controller's message.
func (c *Client) Get(ctx context.Context, path string) (io.ReadCloser, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

// SplitURLs splits a list of controller URLs separated by commas (Base),
// trimming spaces around each. An empty item is kept, for the caller to
// refuse.
func SplitURLs(list string) []string {
	urls := strings.Split(list, ",")
	for i := range urls {
		urls[i] = strings.TrimSpace(urls[i])
	}
	return urls
}

// bases returns Base's URLs without a trailing slash, refusing any that
// is not a URL or would send the token in clear.
func (c *Client) bases() ([]string, error) {
	var out []string
	for _, b := range SplitURLs(c.Base) {
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("controller URL %q: want something like https://patchd.msp.example:8420", b)
		}
		if netaddr.InClear(u) {
			return nil, fmt.Errorf("controller URL %q: plain http would send the admin token in clear; use https://, "+
				"or an SSH tunnel to the controller (ssh -L 8420:127.0.0.1:8420 HOST, then http://127.0.0.1:8420)", b)
		}
		out = append(out, strings.TrimRight(b, "/"))
	}
	return out, nil
}

// do sends method to path with body as JSON (none when nil) and returns
// the body of a 2xx answer; any other answer is an error carrying the
// controller's message. With several replicas it moves from one to the
// next as Client says.
func (c *Client) do(ctx context.Context, method, path string, body any) (io.ReadCloser, error) {
	bases, err := c.bases()
	if err != nil {
		return nil, err
	}
	var payload []byte
	if body != nil {
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	read := method == http.MethodGet
	n := len(bases)
	i := int(c.current.Load()) % n
	// passed says why each replica tried before the one under way was
	// left behind.
	var passed []string
	for tries := 1; ; tries++ {
		resp, err := c.send(ctx, method, bases[i]+path, payload)
		more := tries < n
		switch {
		case err != nil:
			if ctx.Err() != nil || !more || !(read || neverSent(err)) {
				return nil, reachError(err, passed, read || neverSent(err))
			}
			passed = append(passed, err.Error())
		case read && more && gateway(resp.StatusCode):
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			passed = append(passed, fmt.Sprintf("%s answered %s", bases[i], resp.Status))
		default:
			c.current.Store(int64(i))
			return answer(resp, passed)
		}
		i = (i + 1) % n
	}
}

// send sends one request to target.
func (c *Client) send(ctx context.Context, method, target string, payload []byte) (*http.Response, error) {
	var reqBody io.Reader
	if payload != nil {
		reqBody = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reqBody)
	if err != nil {
		return nil, fmt.Errorf("controller URL %q: %w", target, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var hc http.Client
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	// A redirect to the same host carries the token along, even from https
	// to http: refuse any that would send it in clear.
	hc.CheckRedirect = refuseClear
	return hc.Do(req)
}

// answer returns the body of a 2xx answer, and any other answer as an
// error carrying the controller's message, and why the replicas tried
// before were passed.
func answer(resp *http.Response, passed []string) (io.ReadCloser, error) {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	var after string
	if len(passed) > 0 {
		after = " (after other replicas failed: " + strings.Join(passed, "; ") + ")"
	}
	var body protocol.ErrorBody
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil && body.Error != nil {
		return nil, fmt.Errorf("controller answered %s: %s%s", resp.Status, body.Error.Message, after)
	}
	return nil, fmt.Errorf("controller answered %s%s", resp.Status, after)
}

// reachError is the error of a call that reached no replica: err is the
// last replica's, passed the earlier ones'. unsent says that the request
// cannot have been carried out; a write that may have been says so.
func reachError(err error, passed []string, unsent bool) error {
	var before string
	if len(passed) > 0 {
		before = strings.Join(passed, "; ") + "; then "
	}
	if !unsent {
		return fmt.Errorf("reach controller: %s%w (the controller may have received the request before the connection failed: check whether it took effect before sending it again)", before, err)
	}
	return fmt.Errorf("reach controller: %s%w", before, err)
}

// neverSent says whether err shows that the request never left: the
// connection to the replica was not made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// gateway says whether status is what a proxy answers for a replica it
// cannot reach: 502, 503 or 504.
func gateway(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// refuseClear is the redirect policy of admin requests: at most 10, none to
// plain http off loopback.
func refuseClear(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if netaddr.InClear(req.URL) {
		return fmt.Errorf("redirected to %s: plain http would send the admin token in clear; give the controller's https:// URL that is not redirected", req.URL.Redacted())
	}
	return nil
}

// Status reads GET /v1/status.
func (c *Client) Status(ctx context.Context) (*protocol.Status, error) {
	var st protocol.Status
	if err := c.getJSON(ctx, "/v1/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// State reads GET /v1/state, the live fleet's state snapshot, validated.
func (c *Client) State(ctx context.Context) (*protocol.Snapshot, error) {
	body, err := c.Get(ctx, "/v1/state")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	snap, err := protocol.DecodeSnapshot(body)
	if err != nil {
		return nil, fmt.Errorf("controller sent an invalid snapshot: %w", err)
	}
	return snap, nil
}

// AuditPageSize is how many audit entries AuditAll asks for at a time
// (the API's maximum).
const AuditPageSize = 1000

// AuditAll reads the controller's whole audit log, a page at a time.
func (c *Client) AuditAll(ctx context.Context) ([]protocol.AuditEntry, error) {
	var all []protocol.AuditEntry
	after := int64(0)
	for {
		body, err := c.Get(ctx, fmt.Sprintf("/v1/audit?after=%d&limit=%d", after, AuditPageSize))
		if err != nil {
			return nil, err
		}
		page, err := protocol.DecodeAuditPage(body)
		body.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if len(page.Entries) < AuditPageSize || page.Next <= after {
			return all, nil
		}
		after = page.Next
	}
}

// Backup starts GET /v1/backup: a copy of the controller's store, to be
// read to the end.
func (c *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	return c.Get(ctx, "/v1/backup")
}

// getJSON fetches path and decodes its JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	return c.doJSON(ctx, http.MethodGet, path, nil, v)
}

// doJSON sends method to path with body and decodes the JSON answer into
// v.
func (c *Client) doJSON(ctx context.Context, method, path string, body, v any) error {
	rc, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// CreateToken creates a token (POST /v1/tokens); the answer holds its
// secret, which the controller never shows again.
func (c *Client) CreateToken(ctx context.Context, req protocol.TokenRequest) (*protocol.TokenCreated, error) {
	var tc protocol.TokenCreated
	if err := c.doJSON(ctx, http.MethodPost, protocol.PathTokens, req, &tc); err != nil {
		return nil, err
	}
	return &tc, nil
}

// Tokens lists every token, revoked ones too (GET /v1/tokens).
func (c *Client) Tokens(ctx context.Context) ([]protocol.Token, error) {
	var tl protocol.TokenList
	if err := c.getJSON(ctx, protocol.PathTokens, &tl); err != nil {
		return nil, err
	}
	return tl.Tokens, nil
}

// RevokeToken revokes the token named name (DELETE /v1/tokens/NAME).
func (c *Client) RevokeToken(ctx context.Context, name string) (*protocol.Token, error) {
	var t protocol.Token
	if err := c.doJSON(ctx, http.MethodDelete, protocol.TokenPath(url.PathEscape(name)), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Endpoints lists the enrolled endpoints, revoked ones too, of client, or
// of every client the token sees when client is empty (GET /v1/endpoints).
func (c *Client) Endpoints(ctx context.Context, client string) ([]protocol.EndpointInfo, error) {
	path := protocol.PathEndpoints
	if client != "" {
		path += "?client=" + url.QueryEscape(client)
	}
	var el protocol.EndpointList
	if err := c.getJSON(ctx, path, &el); err != nil {
		return nil, err
	}
	return el.Endpoints, nil
}

// RevokeEndpoint revokes endpoint id: its node key is refused from then on
// (POST /v1/endpoints/ID/revoke).
func (c *Client) RevokeEndpoint(ctx context.Context, id string) (*protocol.EndpointInfo, error) {
	var info protocol.EndpointInfo
	if err := c.doJSON(ctx, http.MethodPost, protocol.EndpointRevokePath(url.PathEscape(id)), nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// DeleteEndpoint deletes endpoint id with its inventory, jobs and results
// (DELETE /v1/endpoints/ID).
func (c *Client) DeleteEndpoint(ctx context.Context, id string) (*protocol.EndpointInfo, error) {
	var info protocol.EndpointInfo
	if err := c.doJSON(ctx, http.MethodDelete, protocol.EndpointPath(url.PathEscape(id)), nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
