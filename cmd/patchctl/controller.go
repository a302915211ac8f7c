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
// admin API. The token is never a flag: a command line is seen by every
// user of the machine (ps) and kept in shell histories and CI logs.
type controllerFlags struct {
	url, tokenFile, caFile string
}

// Environment variables that hold the token when --token-file is not
// given. PATCHLINE_ADMIN_TOKEN is the older name, still read.
const (
	tokenEnv    = "PATCHLINE_TOKEN"
	oldTokenEnv = "PATCHLINE_ADMIN_TOKEN"
)

func (f *controllerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "controller", "", "patchd `URL`, e.g. https://patchd.msp.example:8420; for several replicas, their URLs separated by commas")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "`file` holding the token (else $"+tokenEnv+")")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "CA certificate `file` that signed patchd's TLS certificate")
	_ = cmd.MarkFlagRequired("controller")
}

// client builds the admin API client of the flags: the token from
// --token-file, PATCHLINE_TOKEN or PATCHLINE_ADMIN_TOKEN, the CA from
// --ca-file.
func (f *controllerFlags) client() (*adminclient.Client, error) {
	if err := checkAdminURL(f.url); err != nil {
		return nil, err
	}
	var token string
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("--token-file %s is empty", f.tokenFile)
		}
	}
	for _, env := range []string{tokenEnv, oldTokenEnv} {
		if token == "" {
			token = strings.TrimSpace(os.Getenv(env))
		}
	}
	if token == "" {
		return nil, fmt.Errorf("no token: pass --token-file FILE or set %s", tokenEnv)
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

// checkAdminURL checks --controller, one URL or several separated by
// commas, before the admin token is sent to any: plain http is refused
// unless the host is loopback.
func checkAdminURL(raw string) error {
	for _, one := range adminclient.SplitURLs(raw) {
		if one == "" {
			return fmt.Errorf("--controller %q: an empty URL; separate the replicas' URLs with single commas", raw)
		}
		u, err := url.Parse(one)
		if err != nil {
			return fmt.Errorf("--controller %q: %w", one, err)
		}
		if netaddr.InClear(u) {
			return fmt.Errorf("--controller %q: plain http would send the admin token in clear; use https://, "+
				"or an SSH tunnel to the controller (ssh -L 8420:127.0.0.1:8420 HOST, then --controller http://127.0.0.1:8420)", one)
		}
	}
	return nil
}
