package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema/loader"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: run passes the running binary, this one in tests, as the evaluator.
func TestMain(m *testing.M) {
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	keyring := filepath.Join(dir, "keyring.asc")
	if err := os.WriteFile(keyring, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("ghp_abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, cfg reconciler.Config)
	}{
		{name: "a remote repo with every option", args: []string{
			"--repo", "https://git.example/msp/fleet.git", "--branch", "prod", "--git-token-file", token,
			"--data-dir", dir, "--secrets", "s.json", "--listen", "0.0.0.0:8420", "--metrics-listen", "10.0.0.5:9420", "--tls-cert", "c", "--tls-key", "k",
			"--require-signed", "--keyring", keyring, "--trust-from", "4A3F9C0D1E2B5A6978C8D7E6F5A4B3C2D1E0F9A8",
			"--poll", "30s", "--lease", "2m", "--log-format", "json",
		}},
		{name: "a local repo", args: []string{"--repo-dir", dir, "--data-dir", dir, "--secrets", "s.json"}},
		{name: "both repo kinds", args: []string{"--repo", "file:///x", "--repo-dir", dir}, wantErr: "not both"},
		{name: "signing without a keyring", args: []string{"--repo", "file:///x", "--require-signed"}, wantErr: "--require-signed needs --keyring"},
		{name: "SSH signing", args: []string{"--repo", "file:///x", "--require-signed", "--allowed-signers", keyring}},
		{name: "unreadable allowed signers", args: []string{"--repo", "file:///x", "--require-signed", "--allowed-signers", filepath.Join(dir, "nope")}, wantErr: "--allowed-signers"},
		{name: "keys without signing required", args: []string{"--repo", "file:///x", "--keyring", keyring}, wantErr: "only with --require-signed"},
		{name: "trust anchor given as a short hash", args: []string{"--repo", "file:///x", "--require-signed", "--keyring", keyring, "--trust-from", "4a3f9c0"},
			wantErr: `--trust-from "4a3f9c0": give the commit's full 40-hex-digit hash (git rev-parse COMMIT)`},
		{name: "trust anchor given as a branch", args: []string{"--repo", "file:///x", "--require-signed", "--keyring", keyring, "--trust-from", "main"}, wantErr: "--trust-from"},
		{name: "trust anchor without signing required", args: []string{"--repo", "file:///x", "--trust-from", "4a3f9c0d1e2b5a6978c8d7e6f5a4b3c2d1e0f9a8"}, wantErr: "only with --require-signed"},
		{name: "unreadable keyring", args: []string{"--repo", "file:///x", "--require-signed", "--keyring", filepath.Join(dir, "nope")}, wantErr: "--keyring"},
		{name: "bad log level", args: []string{"--repo", "file:///x", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad log format", args: []string{"--repo", "file:///x", "--log-format", "xml"}, wantErr: "--log-format"},
		{name: "a zero lease", args: []string{"--repo", "file:///x", "--lease", "0s"}, wantErr: "--lease"},
		{name: "feeds fetched every 6 hours", args: []string{"--repo", "file:///x", "--feeds-dir", dir, "--feeds-sync", "6h"}},
		{name: "feeds synced without a directory", args: []string{"--repo", "file:///x", "--feeds-sync", "6h"}, wantErr: "--feeds-sync needs --feeds-dir"},
		{name: "feeds synced every second", args: []string{"--repo", "file:///x", "--feeds-dir", dir, "--feeds-sync", "1s"}, wantErr: "a minute or more"},
		{name: "stray argument", args: []string{"--repo", "file:///x", "now"}, wantErr: "unexpected arguments"},
		{name: "default evaluation limits", args: []string{"--repo", "file:///x"}, check: func(t *testing.T, cfg reconciler.Config) {
			if cfg.EvalTimeout != 10*time.Second || cfg.EvalMemory != 512*loader.MiB {
				t.Errorf("limits %v and %v, want 10s and 512 MiB", cfg.EvalTimeout, cfg.EvalMemory)
			}
		}},
		{name: "evaluation limits", args: []string{"--repo", "file:///x", "--eval-timeout", "30s", "--eval-memory", "1GiB"}, check: func(t *testing.T, cfg reconciler.Config) {
			if cfg.EvalTimeout != 30*time.Second || cfg.EvalMemory != loader.GiB {
				t.Errorf("limits %v and %v, want 30s and 1 GiB", cfg.EvalTimeout, cfg.EvalMemory)
			}
		}},
		{name: "a new store beside a signing key", args: []string{"--repo", "file:///x", "--init-store"}, check: func(t *testing.T, cfg reconciler.Config) {
			if !cfg.InitStore {
				t.Error("--init-store did not set InitStore")
			}
		}},
		{name: "no evaluation time", args: []string{"--repo", "file:///x", "--eval-timeout", "0s"}, wantErr: "--eval-timeout"},
		{name: "evaluation memory without a unit we know", args: []string{"--repo", "file:///x", "--eval-memory", "1GB"}, wantErr: "invalid amount of memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Logger == nil {
				t.Error("no logger")
			}
			if tt.check != nil {
				tt.check(t, cfg)
			}
		})
	}
	cfg, opts, err := parseFlags(append(tests[0].args, "--debug-listen", "127.0.0.1:6060"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts.debugAddr != "127.0.0.1:6060" {
		t.Errorf("profiler address %q, want 127.0.0.1:6060", opts.debugAddr)
	}
	if cfg.Repo.Token != "ghp_abc" || cfg.Repo.Branch != "prod" || cfg.RepoBranch != "prod" || cfg.Poll != 30*time.Second ||
		!cfg.Verify.RequireSigned || !strings.HasPrefix(cfg.Verify.Keyring, "-----BEGIN PGP") ||
		cfg.Verify.TrustFrom.String() != "4a3f9c0d1e2b5a6978c8d7e6f5a4b3c2d1e0f9a8" ||
		cfg.Listen != "0.0.0.0:8420" || cfg.MetricsListen != "10.0.0.5:9420" {
		t.Errorf("config from flags: %+v", cfg)
	}
	cfg, _, err = parseFlags(tests[1].args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8420" || cfg.MetricsListen != "127.0.0.1:9420" {
		t.Errorf("default addresses: API %s, metrics %s; want 127.0.0.1:8420 and 127.0.0.1:9420", cfg.Listen, cfg.MetricsListen)
	}
}

// TestRunRefusesBadSetups: patchd exits with a message, not a panic or a
// half-started server, when its setup is wrong.
func TestRunRefusesBadSetups(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secrets, []byte(`{"adminToken": "patchd-test-admin-token"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no data dir", []string{"--repo-dir", dir, "--secrets", secrets}, 1, "--data-dir"},
		{"no secrets", []string{"--repo-dir", dir, "--data-dir", dir}, 1, "--secrets"},
		{"secrets readable by others", []string{"--repo-dir", dir, "--data-dir", dir, "--secrets", secrets}, 1, "chmod 600"},
		{"plain HTTP on a public address", []string{"--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--listen", "0.0.0.0:0"}, 1, "plain HTTP"},
		{"plain HTTP metrics on a public address", []string{"--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--metrics-listen", "0.0.0.0:0"}, 1, "listen 0.0.0.0:0: plain HTTP"},
		{"unknown flag", []string{"--colour"}, 2, "flag provided but not defined"},
		{"profiler on a public address", []string{"--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--debug-listen", "0.0.0.0:0"}, 2, "loopback address only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := run(tt.args, &out); code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Errorf("exit %d, output %q; want exit %d mentioning %q", code, out.String(), tt.code, tt.want)
			}
		})
	}
}

// TestServeDebug: the profiler answers on loopback and stops with its
// context.
func TestServeDebug(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, err := serveDebug(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/debug/pprof/cmdline"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	cancel()
	for range 100 {
		if resp, err := http.Get(url); err != nil {
			return
		} else {
			resp.Body.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the profiler still answers after its context ended")
}

// TestRunRestore: patchd --restore puts a backup in place of the store and
// exits, and refuses what is not a backup.
func TestRunRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "patchline.db"))
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := db.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	data, err := io.ReadAll(rc)
	rc.Close()
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, data, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a backup", []string{"--data-dir", dir, "--restore", backup}, 0, "the store it replaced is kept as " + filepath.Join(dir, "patchline.db.before-restore-")},
		{"not a backup", []string{"--data-dir", dir, "--restore", junk}, 1, "not an SQLite database"},
		{"no data directory", []string{"--restore", backup}, 1, "--data-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := run(tt.args, &out); code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Errorf("exit %d, output %q; want exit %d mentioning %q", code, out.String(), tt.code, tt.want)
			}
		})
	}
}
