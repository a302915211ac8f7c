package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/internal/tlsconf"
)

// controllerFlags are the flags of every command that talks to patchd's
// admin API.
type controllerFlags struct {
	url, token, tokenFile, caFile string
}

func (f *controllerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "controller", "", "patchd `URL`, e.g. https://patchd.msp.example:8420")
	cmd.Flags().StringVar(&f.token, "token", "", "admin token (prefer --token-file or PATCHLINE_ADMIN_TOKEN)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "`file` holding the admin token")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "CA certificate `file` that signed patchd's TLS certificate")
	_ = cmd.MarkFlagRequired("controller")
}

// client builds the admin API client of the flags: the token from
// --token, --token-file or PATCHLINE_ADMIN_TOKEN, the CA from --ca-file.
func (f *controllerFlags) client() (*adminclient.Client, error) {
	if err := checkAdminURL(f.url); err != nil {
		return nil, err
	}
	token := f.token
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		token = os.Getenv("PATCHLINE_ADMIN_TOKEN")
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: pass --token-file FILE or set PATCHLINE_ADMIN_TOKEN")
	}
	hc := &http.Client{Timeout: 5 * time.Minute}
	if f.caFile != "" {
		pool, err := tlsconf.LoadCAFile("--ca-file", f.caFile)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return &adminclient.Client{Base: f.url, Token: token, HTTP: hc}, nil
}

// checkAdminURL checks --controller before the admin token is sent to
// it: plain http is refused unless the host is loopback.
func checkAdminURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--controller %q: %w", raw, err)
	}
	if netaddr.InClear(u) {
		return fmt.Errorf("--controller %q: plain http would send the admin token in clear; use https://, "+
			"or an SSH tunnel to the controller (ssh -L 8420:127.0.0.1:8420 HOST, then --controller http://127.0.0.1:8420)", raw)
	}
	return nil
}
