package protocol

// The admin API's tokens and endpoint management: what `patchctl tokens`
// and `patchctl endpoints` send to patchd and what they get back.

import (
	"fmt"
	"time"
)

// Routes of the admin API's tokens and endpoints.
const (
	// PathTokens lists (GET) and creates (POST) tokens.
	PathTokens = "/v1/tokens"
	// PathToken is the route pattern of one token (DELETE revokes it);
	// use TokenPath.
	PathToken = "/v1/tokens/{name}"
	// PathEndpoints lists endpoints (GET, ?client= to list one client's).
	PathEndpoints = "/v1/endpoints"
	// PathEndpoint is the route pattern of one endpoint (DELETE deletes
	// it); use EndpointPath.
	PathEndpoint = "/v1/endpoints/{id}"
	// PathEndpointRevoke is the route pattern that revokes an endpoint
	// (POST); use EndpointRevokePath.
	PathEndpointRevoke = "/v1/endpoints/{id}/revoke"
)

// TokenPath is the URL path of the token named name.
func TokenPath(name string) string { return "/v1/tokens/" + name }

// EndpointPath is the URL path of endpoint id.
func EndpointPath(id string) string { return "/v1/endpoints/" + id }

// EndpointRevokePath is the URL path that revokes endpoint id.
func EndpointRevokePath(id string) string { return "/v1/endpoints/" + id + "/revoke" }

// Scope is a right an admin API token holds.
type Scope string

// Token scopes. A token holds one or more.
const (
	// ScopeRead reads status, state, the audit log and the endpoint
	// list (what `patchctl status`, `state export`, `report` and
	// `endpoints list` need). A read token may be limited to some
	// clients.
	ScopeRead Scope = "read"
	// ScopeBackup downloads backups of the store. A backup holds every
	// client, so a token limited to clients cannot hold it.
	ScopeBackup Scope = "backup"
	// ScopeAdmin is every right: the read and backup scopes, and managing
	// tokens and endpoints. It cannot be limited to clients.
	ScopeAdmin Scope = "admin"
)

// Scopes are the known scopes, in the order they are shown.
var Scopes = []Scope{ScopeRead, ScopeBackup, ScopeAdmin}

// BootstrapTokenName names the secrets file's adminToken where a token's
// name is shown (the audit log's "by"); no created token can have it,
// since token names are lowercase.
const BootstrapTokenName = "adminToken"

// TokenPrefix starts every token patchd generates, so a leaked one is
// recognisable (secret scanners, logs).
const TokenPrefix = "plt_"

// MaxTokenNameBytes bounds a token's name.
const MaxTokenNameBytes = 64

// MaxTokenClients bounds the clients a token may be limited to.
const MaxTokenClients = 1000

// CheckTokenName checks a token name: 1 to MaxTokenNameBytes of
// lowercase letters, digits, '.', '_' and '-', starting with a letter or
// a digit (so it is safe in a URL path, a log line and a terminal).
func CheckTokenName(name string) error {
	if name == "" {
		return fmt.Errorf("missing")
	}
	if len(name) > MaxTokenNameBytes {
		return fmt.Errorf("%d bytes, at most %d are accepted", len(name), MaxTokenNameBytes)
	}
	if err := checkID(name); err != nil {
		return fmt.Errorf("%.80q: %w", name, err)
	}
	return nil
}

// CheckClientID checks a client id as the fleet repo's schema has it:
// lowercase letters, digits, '.', '_' and '-', starting with a letter or a
// digit, at most MaxIDBytes.
func CheckClientID(id string) error {
	if id == "" {
		return fmt.Errorf("missing")
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("%d bytes, at most %d are accepted", len(id), MaxIDBytes)
	}
	if err := checkID(id); err != nil {
		return fmt.Errorf("%.80q: %w", id, err)
	}
	return nil
}

// checkID checks the characters of a lowercase id.
func checkID(s string) error {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("character %+q at byte %d: use lowercase letters, digits, '.', '_' and '-', starting with a letter or a digit", c, i)
		}
	}
	return nil
}

// TokenRequest creates a token (POST /v1/tokens).
type TokenRequest struct {
	Name   string  `json:"name"`
	Scopes []Scope `json:"scopes"`
	// Clients limits a read token to these clients; empty means every
	// client.
	Clients []string `json:"clients,omitempty"`
}

// Token is a token as the admin API shows it: never its secret nor the
// secret's hash.
type Token struct {
	Name    string   `json:"name"`
	Scopes  []Scope  `json:"scopes"`
	Clients []string `json:"clients,omitempty"`
	// CreatedBy is the name of the token that created it.
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	// LastUsed is when it was last accepted, to the minute; zero when
	// never.
	LastUsed time.Time `json:"lastUsed,omitzero"`
	// RevokedAt is zero while the token works.
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	RevokedBy string    `json:"revokedBy,omitempty"`
}

// TokenCreated answers POST /v1/tokens: the token and its secret, which
// the controller does not keep and never shows again.
type TokenCreated struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// TokenList answers GET /v1/tokens: every token, revoked ones included,
// by name.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// EndpointInfo is an enrolled endpoint as GET /v1/endpoints lists it.
type EndpointInfo struct {
	ID         string    `json:"id"`
	Client     string    `json:"client"`
	Hostname   string    `json:"hostname"`
	EnrolledAt time.Time `json:"enrolledAt"`
	// LastSeen is when its last report arrived; zero when it never
	// reported.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// RevokedAt is zero while the endpoint's node key works.
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	RevokedBy string    `json:"revokedBy,omitempty"`
}

// EndpointList answers GET /v1/endpoints, sorted by endpoint id.
type EndpointList struct {
	Endpoints []EndpointInfo `json:"endpoints"`
}
