package reconciler_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/reconciler"
)

// get sends a GET with hc and returns the status and the body.
func get(t *testing.T, hc *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestMetricsHaveTheirOwnListener: /metrics is served on the metrics
// address and nowhere else; the API's address answers 404 for it, and
// the metrics address serves nothing but /metrics.
func TestMetricsHaveTheirOwnListener(t *testing.T) {
	h := newHarness(t, nil)
	metricsBase := "http://" + h.pd.MetricsAddr
	tests := []struct {
		name       string
		url        string
		wantStatus int
		want       string
	}{
		{"metrics on the metrics address", h.pd.MetricsURL, 200, "patchline_policy_revision_info"},
		{"no metrics on the API address", h.base + "/metrics", 404, `"code":"not_found"`},
		{"no API on the metrics address", metricsBase + "/v1/status", 404, ""},
		{"nothing else on the metrics address", metricsBase + "/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, http.DefaultClient, tt.url)
			if status != tt.wantStatus || !strings.Contains(body, tt.want) {
				t.Errorf("GET %s: %d %.200s; want %d with %q", tt.url, status, body, tt.wantStatus, tt.want)
			}
		})
	}
}

// TestMetricsListenerFollowsTheTLSRule: the metrics listener serves plain
// HTTP only on loopback, unless --insecure, and TLS with the API's
// certificate when one is given.
func TestMetricsListenerFollowsTheTLSRule(t *testing.T) {
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("testdata/fleet")
	up.Commit("Start the fleet")
	cert, key, roots := selfSignedCert(t)
	tests := []struct {
		name    string
		change  func(*reconciler.Config)
		wantErr string
	}{
		{name: "plain HTTP on a public metrics address", change: func(c *reconciler.Config) { c.MetricsListen = "0.0.0.0:0" }, wantErr: "listen 0.0.0.0:0: plain HTTP is only served on loopback"},
		{name: "plain HTTP on a public metrics address, behind a proxy", change: func(c *reconciler.Config) { c.MetricsListen, c.Insecure = "0.0.0.0:0", true }},
		{name: "TLS on both listeners", change: func(c *reconciler.Config) { c.TLSCert, c.TLSKey = cert, key }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := patchdtest.Config(t, up.Work, nil)
			tt.change(&cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := reconciler.New(ctx, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			_, port, _ := net.SplitHostPort(c.MetricsAddr())
			url := "http://127.0.0.1:" + port + "/metrics"
			hc := http.DefaultClient
			if cfg.TLSCert != "" {
				url = "https://127.0.0.1:" + port + "/metrics"
				hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
				// The API's listener speaks TLS with the same certificate
				// (and asks for the admin token).
				_, apiPort, _ := net.SplitHostPort(c.Addr())
				if status, body := get(t, hc, "https://127.0.0.1:"+apiPort+"/v1/status"); status != http.StatusUnauthorized {
					t.Errorf("API over TLS: %d %.200s, want 401", status, body)
				}
			}
			if status, body := get(t, hc, url); status != 200 || !strings.Contains(body, "patchline_") {
				t.Errorf("GET %s: %d %.200s", url, status, body)
			}
		})
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns their files and a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "patchd test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(parsed)
	return certFile, keyFile, roots
}
