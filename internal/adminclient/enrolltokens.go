package adminclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/patchline/patchline/protocol"
)

// CreateEnrollToken creates an enrollment token (POST
// /v1/enroll-tokens); the answer holds its secret, shown only this once.
func (c *Client) CreateEnrollToken(ctx context.Context, req protocol.EnrollTokenRequest) (*protocol.EnrollTokenCreated, error) {
	var tc protocol.EnrollTokenCreated
	if err := c.doJSON(ctx, http.MethodPost, protocol.PathEnrollTokens, req, &tc); err != nil {
		return nil, err
	}
	return &tc, nil
}

// EnrollTokens lists the enrollment tokens, revoked ones too, of client,
// or of every client when client is empty (GET /v1/enroll-tokens).
func (c *Client) EnrollTokens(ctx context.Context, client string) ([]protocol.EnrollToken, error) {
	path := protocol.PathEnrollTokens
	if client != "" {
		path += "?" + url.Values{"client": {client}}.Encode()
	}
	var list protocol.EnrollTokenList
	if err := c.getJSON(ctx, path, &list); err != nil {
		return nil, err
	}
	return list.Tokens, nil
}

// RevokeEnrollToken revokes the enrollment token with this id or name
// (DELETE /v1/enroll-tokens/ID-OR-NAME).
func (c *Client) RevokeEnrollToken(ctx context.Context, idOrName string) (*protocol.EnrollToken, error) {
	var t protocol.EnrollToken
	if err := c.doJSON(ctx, http.MethodDelete, protocol.EnrollTokenPath(url.PathEscape(idOrName)), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
