package protocol

// The admin API's enrollment tokens: what `patchctl enroll` sends to
// patchd and what it gets back. An agent presents a token's secret as
// EnrollRequest.Secret, in place of its client's static secret from the
// secrets file.

import (
	"fmt"
	"strconv"
	"time"
)

// Routes of the admin API's enrollment tokens.
const (
	// PathEnrollTokens lists (GET, ?client= for one client's) and creates
	// (POST) enrollment tokens.
	PathEnrollTokens = "/v1/enroll-tokens"
	// PathEnrollToken is the route pattern of one enrollment token, by id
	// or name (DELETE revokes it); use EnrollTokenPath.
	PathEnrollToken = "/v1/enroll-tokens/{token}"
)

// EnrollTokenPath is the URL path of the enrollment token with this id or
// name.
func EnrollTokenPath(idOrName string) string { return "/v1/enroll-tokens/" + idOrName }

// EnrollTokenPrefix starts every enrollment token patchd generates, so a
// leaked one is recognisable and never taken for an admin token.
const EnrollTokenPrefix = "ple_"

// Audit entry kinds of enrollment tokens: the detail names the token (id
// and name, never its secret or hash), its labels, expiry and uses, and
// "by", the admin token that did it. Each use is in the enroll entry of
// the endpoint it enrolled (its detail's "token").
const (
	AuditEnrollTokenCreated AuditKind = "enroll-token-created"
	AuditEnrollTokenRevoked AuditKind = "enroll-token-revoked"
)

// Enrollment token states, as the admin API shows them.
const (
	EnrollTokenActive  = "active"
	EnrollTokenExpired = "expired"
	EnrollTokenUsedUp  = "used-up"
	EnrollTokenRevoked = "revoked"
)

// CheckEnrollTokenName checks an enrollment token's name: a token name
// (CheckTokenName) that is not all digits, so it is never read as an id.
func CheckEnrollTokenName(name string) error {
	if err := CheckTokenName(name); err != nil {
		return err
	}
	if _, err := strconv.ParseUint(name, 10, 64); err == nil {
		return fmt.Errorf("%q: all digits reads as a token id; add a letter", name)
	}
	return nil
}

// EnrollTokenRequest creates an enrollment token (POST /v1/enroll-tokens).
type EnrollTokenRequest struct {
	Client string `json:"client"`
	// Name is unique among enrollment tokens; patchd makes one up
	// ("<client>-<6 hex digits>") when it is empty.
	Name string `json:"name,omitempty"`
	// Labels are given to every endpoint enrolled with the token, over
	// the labels its agent sends.
	Labels map[string]string `json:"labels,omitempty"`
	// ExpiresIn is how long the token enrolls, a Go duration ("168h");
	// empty for a token that does not expire.
	ExpiresIn string `json:"expiresIn,omitempty"`
	// MaxUses is how many endpoints the token enrolls; 0 for no limit.
	MaxUses int64 `json:"maxUses,omitempty"`
}

// EnrollToken is an enrollment token as the admin API shows it: never its
// secret nor the secret's hash.
type EnrollToken struct {
	ID     int64             `json:"id"`
	Name   string            `json:"name"`
	Client string            `json:"client"`
	Labels map[string]string `json:"labels,omitempty"`
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	// MaxUses is 0 for no limit.
	MaxUses int64 `json:"maxUses,omitempty"`
	Uses    int64 `json:"uses"`
	// State is EnrollTokenActive, EnrollTokenExpired, EnrollTokenUsedUp
	// or EnrollTokenRevoked.
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
	RevokedBy string    `json:"revokedBy,omitempty"`
}

// EnrollTokenCreated answers POST /v1/enroll-tokens: the token and its
// secret, which the controller does not keep and never shows again.
type EnrollTokenCreated struct {
	Token  EnrollToken `json:"token"`
	Secret string      `json:"secret"`
	// Warning is set when the token is made but something about it looks
	// wrong, such as a client the fleet repo does not have (yet).
	Warning string `json:"warning,omitempty"`
}

// EnrollTokenList answers GET /v1/enroll-tokens, by id.
type EnrollTokenList struct {
	Tokens []EnrollToken `json:"tokens"`
}
