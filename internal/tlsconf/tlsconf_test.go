package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCA makes a self-signed CA and returns its certificate, key and PEM.
func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// serverCert is patchd's certificate for patchd.msp.example, signed by ca.
func serverCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "patchd"}, DNSNames: []string{"patchd.msp.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadCAFileTrustsItsCertificates: every CA of a bundle file signs
// certificates the pool accepts; a CA not in the file does not.
func TestLoadCAFileTrustsItsCertificates(t *testing.T) {
	dir := t.TempDir()
	msp, mspKey, mspPEM := newCA(t, "MSP CA")
	old, oldKey, oldPEM := newCA(t, "MSP CA 2019")
	other, otherKey, _ := newCA(t, "Someone else's CA")
	bundle := writeFile(t, dir, "ca.pem", append(mspPEM, oldPEM...))

	pool, err := LoadCAFile("--ca-file", bundle)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(cert *x509.Certificate) error {
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "patchd.msp.example"})
		return err
	}
	for name, cert := range map[string]*x509.Certificate{"first CA": serverCert(t, msp, mspKey), "second CA": serverCert(t, old, oldKey)} {
		if err := verify(cert); err != nil {
			t.Errorf("certificate of the %s in the file: %v", name, err)
		}
	}
	if err := verify(serverCert(t, other, otherKey)); err == nil {
		t.Error("a certificate of a CA not in the file verifies")
	}
}

func TestLoadCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "ca.der", []byte("not a certificate"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, path, want string
	}{
		{"a file without a PEM certificate", notPEM, "--ca-file " + notPEM + ": no PEM certificate in it"},
		{"a missing file", missing, "--ca-file: open " + missing + ":"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadCAFile("--ca-file", tt.path)
			if pool != nil || err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("LoadCAFile = %v, %v; want an error starting %q", pool, err, tt.want)
			}
		})
	}
}
