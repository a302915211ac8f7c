package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/internal/tlsconf"
	"github.com/patchline/patchline/protocol"
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

// get fetches path from the controller's admin API and returns the body.
func (f *controllerFlags) get(ctx context.Context, path string) (io.ReadCloser, error) {
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
	client := &http.Client{
		Timeout: 5 * time.Minute,
		// A redirect to the same host carries the token along, even from
		// https to http.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if netaddr.InClear(req.URL) {
				return fmt.Errorf("redirected to %s: plain http would send the admin token in clear; give --controller an https:// URL that is not redirected", req.URL.Redacted())
			}
			return nil
		},
	}
	if f.caFile != "" {
		pool, err := tlsconf.LoadCAFile("--ca-file", f.caFile)
		if err != nil {
			return nil, err
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.url, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--controller %q: %w", f.url, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach controller: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var body protocol.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil && body.Error != nil {
			return nil, fmt.Errorf("controller answered %s: %s", resp.Status, body.Error.Message)
		}
		return nil, fmt.Errorf("controller answered %s", resp.Status)
	}
	return resp.Body, nil
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
