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
	"net/http"
	"net/url"
	"strings"

	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/protocol"
)

// Client is an admin API client of one controller.
type Client struct {
	// Base is the controller's URL, e.g. https://patchd.msp.example:8420.
	Base string
	// Token is the bearer token: the secrets file's admin token or one
	// made with CreateToken.
	Token string
	// HTTP sends the requests (http.DefaultClient when nil).
	HTTP *http.Client
}

// Get fetches path (with its query) and returns the body of a 200 answer;
// any other answer is an error carrying the controller's message.
func (c *Client) Get(ctx context.Context, path string) (io.ReadCloser, error) {
	return c.do(ctx, http.MethodGet, path, nil)
}

// do sends method to path with body as JSON (none when nil) and returns
// the body of a 2xx answer; any other answer is an error carrying the
// controller's message.
func (c *Client) do(ctx context.Context, method, path string, body any) (io.ReadCloser, error) {
	u, err := url.Parse(strings.TrimRight(c.Base, "/") + path)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("controller URL %q: want something like https://patchd.msp.example:8420", c.Base)
	}
	if netaddr.InClear(u) {
		return nil, fmt.Errorf("controller URL %q: plain http would send the admin token in clear; use https://, "+
			"or an SSH tunnel to the controller (ssh -L 8420:127.0.0.1:8420 HOST, then http://127.0.0.1:8420)", c.Base)
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reqBody)
	if err != nil {
		return nil, fmt.Errorf("controller URL %q: %w", c.Base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var hc http.Client
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	// A redirect to the same host carries the token along, even from https
	// to http: refuse any that would send it in clear.
	hc.CheckRedirect = refuseClear
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach controller: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		var body protocol.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil && body.Error != nil {
			return nil, fmt.Errorf("controller answered %s: %s", resp.Status, body.Error.Message)
		}
		return nil, fmt.Errorf("controller answered %s", resp.Status)
	}
	return resp.Body, nil
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
