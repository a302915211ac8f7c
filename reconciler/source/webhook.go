package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Forges whose webhooks [WebhookSignature.Verify] accepts, as it names them.
const (
	ProviderGitHub = "github"
	ProviderGitea  = "gitea"
	ProviderGitLab = "gitlab"
)

// Webhook headers, in the order ParseWebhookSignature looks for them. Gitea also
// sends X-Hub-Signature-256 with the same value; its own header wins so the
// provider is named right.
const (
	headerGitea    = "X-Gitea-Signature"
	headerGitHub   = "X-Hub-Signature-256"
	headerGitLab   = "X-Gitlab-Token"
	headerGitHubV1 = "X-Hub-Signature"
)

// A WebhookSignature is what a webhook request carries to prove that a
// forge knowing the shared secret sent it. It is read from the headers
// alone ([ParseWebhookSignature]), so a request without one is refused
// before its body is read, and checked against the body as the body is
// read ([WebhookSignature.Verify]):
//
//   - GitHub: X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of
//     the body keyed with the secret;
//   - Gitea: X-Gitea-Signature is the hex HMAC-SHA256 of the body;
//   - GitLab: X-Gitlab-Token is the secret itself (GitLab does not sign).
type WebhookSignature struct {
	provider string
	// header is the header the signature came in, for messages.
	header string
	// mac is the HMAC-SHA256 of the body the forge claims (GitHub, Gitea).
	mac []byte
	// token is GitLab's token.
	token string
}

// ParseWebhookSignature finds the signature of a webhook request in its
// headers. A request with none of the headers above, or with only the
// SHA-1 X-Hub-Signature, is refused, and so is one whose HMAC is not the
// hex of a SHA-256 HMAC (it can match no body).
func ParseWebhookSignature(h http.Header) (WebhookSignature, error) {
	if v := h.Get(headerGitea); v != "" {
		return hmacSignature(ProviderGitea, headerGitea, v)
	}
	if v := h.Get(headerGitHub); v != "" {
		hexSig, ok := strings.CutPrefix(v, "sha256=")
		if !ok {
			return WebhookSignature{}, fmt.Errorf("webhook: %s must start with \"sha256=\"", headerGitHub)
		}
		return hmacSignature(ProviderGitHub, headerGitHub, hexSig)
	}
	if _, ok := h[http.CanonicalHeaderKey(headerGitLab)]; ok {
		return WebhookSignature{provider: ProviderGitLab, header: headerGitLab, token: h.Get(headerGitLab)}, nil
	}
	if h.Get(headerGitHubV1) != "" {
		return WebhookSignature{}, fmt.Errorf("webhook: only the SHA-1 %s header was sent; SHA-1 signatures are refused, send %s",
			headerGitHubV1, headerGitHub)
	}
	return WebhookSignature{}, fmt.Errorf("webhook: no signature header (%s, %s or %s)", headerGitHub, headerGitea, headerGitLab)
}

// hmacSignature is the signature of a header carrying a hex HMAC-SHA256.
func hmacSignature(provider, header, hexSig string) (WebhookSignature, error) {
	mac, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil || len(mac) != sha256.Size {
		return WebhookSignature{}, fmt.Errorf("webhook: %s does not match the body and secret", header)
	}
	return WebhookSignature{provider: provider, header: header, mac: mac}, nil
}

// Verify checks the signature with secret and names the forge that sent
// it. An HMAC is computed over body as it is read, to its end, keeping
// none of it, so a large body costs no memory; a GitLab token does not
// depend on the body, which is then not read. An error reading body is
// returned wrapped (an *http.MaxBytesError stays visible to errors.As).
// Every comparison takes constant time. Every request is refused when
// secret is empty, since an empty HMAC key proves nothing.
func (s WebhookSignature) Verify(body io.Reader, secret []byte) (provider string, err error) {
	if len(secret) == 0 {
		return "", errors.New("webhook: no secret configured; refusing unauthenticated webhooks")
	}
	switch s.provider {
	case ProviderGitLab:
		// Hash both sides so the comparison's time does not depend on
		// the secret's length either.
		got := sha256.Sum256([]byte(s.token))
		want := sha256.Sum256(secret)
		if !hmac.Equal(got[:], want[:]) {
			return "", fmt.Errorf("webhook: %s does not match the secret", headerGitLab)
		}
		return ProviderGitLab, nil
	case ProviderGitHub, ProviderGitea:
		mac := hmac.New(sha256.New, secret)
		if _, err := io.Copy(mac, body); err != nil {
			return "", fmt.Errorf("webhook: read body: %w", err)
		}
		if !hmac.Equal(s.mac, mac.Sum(nil)) {
			return "", fmt.Errorf("webhook: %s does not match the body and secret", s.header)
		}
		return s.provider, nil
	}
	return "", errors.New("webhook: no signature")
}

// GitHubSignature is the X-Hub-Signature-256 header value GitHub sends
// with body under secret ("sha256=" and the hex HMAC-SHA256): what
// Verify checks, for the simulator and tests that play the forge.
func GitHubSignature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
