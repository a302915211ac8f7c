// Package tlsconf holds the TLS settings Patchline's clients share: the
// CA certificates that patchctl and patch-agent trust a controller's
// certificate by when no system CA signed it (their --ca-file).
package tlsconf

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCAFile reads the PEM certificates in the file at path into a new
// pool, for a tls.Config's RootCAs. A file that holds no PEM certificate is
// an error. Errors start with setting, the name the user gave the file by
// (a flag such as "--ca-file").
func LoadCAFile(setting, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", setting, path)
	}
	return pool, nil
}
