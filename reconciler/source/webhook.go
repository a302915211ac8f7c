package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Forges whose webhooks [VerifyWebhook] accepts, as it names them.
const (
	ProviderGitHub = "github"
	ProviderGitea  = "gitea"
	ProviderGitLab = "gitlab"
)

// Webhook headers, in the order VerifyWebhook looks for them. Gitea also
// sends X-Hub-Signature-256 with the same value; its own header wins so the
// provider is named right.
const (
	headerGitea    = "X-Gitea-Signature"
	headerGitHub   = "X-Hub-Signature-256"
	headerGitLab   = "X-Gitlab-Token"
	headerGitHubV1 = "X-Hub-Signature"
)

// VerifyWebhook checks that a webhook request was sent by a forge that
// knows secret, and names the forge:
//
//   - GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
//     body keyed with secret;
//   - Gitea: X-Gitea-Signature is the hex HMAC-SHA256 of body;
//   - GitLab: X-Gitlab-Token is the secret itself (GitLab does not sign).
//
// Every comparison takes constant time. A request with none of these
// headers, with only the SHA-1 X-Hub-Signature, or with a value that does
// not match is refused; so is every request when secret is empty, since
// an empty HMAC key proves nothing.
func VerifyWebhook(h http.Header, body []byte, secret []byte) (provider string, err error) {
	if len(secret) == 0 {
		return "", errors.New("webhook: no secret configured; refusing unauthenticated webhooks")
	}
	if v := h.Get(headerGitea); v != "" {
		if !hmacMatches(v, body, secret) {
			return "", fmt.Errorf("webhook: %s does not match the body and secret", headerGitea)
		}
		return ProviderGitea, nil
	}
	if v := h.Get(headerGitHub); v != "" {
		hexSig, ok := strings.CutPrefix(v, "sha256=")
		if !ok {
			return "", fmt.Errorf("webhook: %s must start with \"sha256=\"", headerGitHub)
		}
		if !hmacMatches(hexSig, body, secret) {
			return "", fmt.Errorf("webhook: %s does not match the body and secret", headerGitHub)
		}
		return ProviderGitHub, nil
	}
	if _, ok := h[http.CanonicalHeaderKey(headerGitLab)]; ok {
		// Hash both sides so the comparison's time does not depend on
		// the secret's length either.
		got := sha256.Sum256([]byte(h.Get(headerGitLab)))
		want := sha256.Sum256(secret)
		if !hmac.Equal(got[:], want[:]) {
			return "", fmt.Errorf("webhook: %s does not match the secret", headerGitLab)
		}
		return ProviderGitLab, nil
	}
	if h.Get(headerGitHubV1) != "" {
		return "", fmt.Errorf("webhook: only the SHA-1 %s header was sent; SHA-1 signatures are refused, send %s",
			headerGitHubV1, headerGitHub)
	}
	return "", fmt.Errorf("webhook: no signature header (%s, %s or %s)", headerGitHub, headerGitea, headerGitLab)
}

// GitHubSignature is the X-Hub-Signature-256 header value GitHub sends
// with body under secret ("sha256=" and the hex HMAC-SHA256): what
// VerifyWebhook checks, for the simulator and tests that play the forge.
func GitHubSignature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// hmacMatches reports whether hexSig is the HMAC-SHA256 of body under secret.
func hmacMatches(hexSig string, body, secret []byte) bool {
	sig, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}
