package source

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func sign(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

// verify checks a webhook as the API does: the signature from the headers,
// then the body.
func verify(h http.Header, body, secret []byte) (string, error) {
	sig, err := ParseWebhookSignature(h)
	if err != nil {
		return "", err
	}
	return sig.Verify(bytes.NewReader(body), secret)
}

func TestVerifyWebhook(t *testing.T) {
	const secret = "s3cret-shared-with-the-forge"
	const body = `{"ref":"refs/heads/main","after":"0123abcd"}`
	good := sign(secret, body)
	tests := []struct {
		name         string
		header       map[string]string
		body         string
		secret       string
		wantProvider string
		wantErr      string
	}{
		{name: "GitHub push", header: map[string]string{"X-Hub-Signature-256": "sha256=" + good}, wantProvider: ProviderGitHub},
		{name: "GitHub push with upper-case hex", header: map[string]string{"X-Hub-Signature-256": "sha256=" + strings.ToUpper(good)}, wantProvider: ProviderGitHub},
		{name: "GitHub with SHA-1 signature too", header: map[string]string{"X-Hub-Signature-256": "sha256=" + good, "X-Hub-Signature": "sha1=abc"}, wantProvider: ProviderGitHub},
		{name: "Gitea push", header: map[string]string{"X-Gitea-Signature": good}, wantProvider: ProviderGitea},
		{name: "Gitea push also carrying the GitHub header", header: map[string]string{"X-Gitea-Signature": good, "X-Hub-Signature-256": "sha256=" + good}, wantProvider: ProviderGitea},
		{name: "GitLab push", header: map[string]string{"X-Gitlab-Token": secret}, wantProvider: ProviderGitLab},

		{name: "GitHub body altered in transit", header: map[string]string{"X-Hub-Signature-256": "sha256=" + good}, body: body + " ", wantErr: "does not match"},
		{name: "GitHub signed with another secret", header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("other", body)}, wantErr: "does not match"},
		{name: "GitHub signature without sha256= prefix", header: map[string]string{"X-Hub-Signature-256": good}, wantErr: `must start with "sha256="`},
		{name: "GitHub signature not hex", header: map[string]string{"X-Hub-Signature-256": "sha256=zz"}, wantErr: "does not match"},
		{name: "GitHub signature truncated", header: map[string]string{"X-Hub-Signature-256": "sha256=" + good[:32]}, wantErr: "does not match"},
		{name: "GitHub SHA-1 signature only", header: map[string]string{"X-Hub-Signature": "sha1=" + good[:40]}, wantErr: "SHA-1 signatures are refused"},
		{name: "Gitea signed with another secret", header: map[string]string{"X-Gitea-Signature": sign("other", body)}, wantErr: "X-Gitea-Signature does not match"},
		{name: "GitLab wrong token", header: map[string]string{"X-Gitlab-Token": "guess"}, wantErr: "X-Gitlab-Token does not match"},
		{name: "GitLab empty token", header: map[string]string{"X-Gitlab-Token": ""}, wantErr: "X-Gitlab-Token does not match"},
		{name: "GitLab token is a prefix of the secret", header: map[string]string{"X-Gitlab-Token": secret[:6]}, wantErr: "does not match"},
		{name: "no signature header", header: map[string]string{"X-GitHub-Event": "push"}, wantErr: "no signature header"},
		{name: "controller has no secret", header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("", body)}, secret: "-", wantErr: "no secret configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			b, s := body, secret
			if tt.body != "" {
				b = tt.body
			}
			if tt.secret == "-" {
				s = ""
			}
			provider, err := verify(h, []byte(b), []byte(s))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("verify = %q, %v; want error containing %q", provider, err, tt.wantErr)
				}
				if provider != "" {
					t.Errorf("provider = %q on error, want empty", provider)
				}
				return
			}
			if err != nil || provider != tt.wantProvider {
				t.Fatalf("verify = %q, %v; want %q", provider, err, tt.wantProvider)
			}
		})
	}
}

func FuzzVerifyWebhook(f *testing.F) {
	const secret = "fuzz-secret"
	f.Add("X-Hub-Signature-256", "sha256="+sign(secret, "{}"), []byte("{}"), []byte(secret))
	f.Add("X-Gitea-Signature", sign(secret, "{}"), []byte("{}"), []byte(secret))
	f.Add("X-Gitlab-Token", secret, []byte("{}"), []byte(secret))
	f.Add("X-Hub-Signature", "sha1=00", []byte{}, []byte{})
	f.Add("X-Hub-Signature-256", "sha256=\x00", []byte{0xff}, []byte("k"))
	f.Fuzz(func(t *testing.T, name, value string, body, secret []byte) {
		h := http.Header{}
		h.Set(name, value)
		provider, err := verify(h, body, secret)
		if (err == nil) == (provider == "") {
			t.Fatalf("verify = %q, %v: want a provider exactly when there is no error", provider, err)
		}
		if err == nil && len(secret) == 0 {
			t.Fatal("accepted a webhook with an empty secret")
		}
	})
}

// failingReader fails every read with err.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

// TestWebhookBodyIsReadOnlyForAnHMAC: a GitLab token is checked without
// reading the body, a missing secret refuses before reading it, and an
// error reading it is returned for the caller to answer.
func TestWebhookBodyIsReadOnlyForAnHMAC(t *testing.T) {
	const secret = "s3cret-shared-with-the-forge"
	errRead := errors.New("connection reset")
	tests := []struct {
		name    string
		header  map[string]string
		secret  string
		wantErr error
		want    string
	}{
		{name: "GitLab token", header: map[string]string{"X-Gitlab-Token": secret}, secret: secret, want: ProviderGitLab},
		{name: "no secret configured", header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("", "")}},
		{name: "GitHub body cut short", header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, "")}, secret: secret, wantErr: errRead},
		{name: "Gitea body cut short", header: map[string]string{"X-Gitea-Signature": sign(secret, "")}, secret: secret, wantErr: errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			sig, err := ParseWebhookSignature(h)
			if err != nil {
				t.Fatal(err)
			}
			provider, err := sig.Verify(failingReader{errRead}, []byte(tt.secret))
			switch {
			case tt.want != "" && (err != nil || provider != tt.want):
				t.Errorf("Verify = %q, %v; want %q without reading the body", provider, err, tt.want)
			case tt.want == "" && (err == nil || provider != ""):
				t.Errorf("Verify = %q, %v; want an error", provider, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("Verify error %v does not wrap the read error", err)
			case tt.want == "" && tt.wantErr == nil && errors.Is(err, errRead):
				t.Errorf("Verify read the body: %v", err)
			}
		})
	}
}
