package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema/loader"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: run passes the running binary, this one in tests, as the evaluator.
// Otherwise it runs the tests and stops the PostgreSQL cluster they
// started, if any.
func TestMain(m *testing.M) {
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Main(m))
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
	key, keyFile := newKeyFile(t)
	password := writeFile(t, "pg-password", "s3cret pass\n", 0o600)
	openPassword := writeFile(t, "open-password", "s3cret\n", 0o644)
	emptyPassword := writeFile(t, "empty-password", "\n", 0o600)
	notAKey := writeFile(t, "not-a-key.pem", "hello\n", 0o600)
	const database = "postgres://patchd@db.msp.example/patchline"
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
		{name: "PostgreSQL with a password file and a signing key", args: []string{"--repo", "file:///x", "--data-dir", dir,
			"--database", database, "--database-password-file", password, "--signing-key", keyFile}, check: func(t *testing.T, cfg reconciler.Config) {
			if cfg.Database != database || cfg.DatabasePassword != "s3cret pass" || !key.Equal(cfg.SigningKey) {
				t.Errorf("database %q, password %q, key read %v; want %q, the file's line, the key", cfg.Database, cfg.DatabasePassword, key.Equal(cfg.SigningKey), database)
			}
		}},
		{name: "PostgreSQL as a key/value string", args: []string{"--repo", "file:///x", "--database", "host=/run/postgresql dbname=patchline", "--signing-key", keyFile},
			check: func(t *testing.T, cfg reconciler.Config) {
				if cfg.Database != "host=/run/postgresql dbname=patchline" || cfg.DatabasePassword != "" {
					t.Errorf("database %q, password %q", cfg.Database, cfg.DatabasePassword)
				}
			}},
		{name: "a password file others can read", args: []string{"--repo", "file:///x", "--database", database, "--database-password-file", openPassword},
			wantErr: "--database-password-file: " + openPassword + ": mode 0644 lets group or others read it; run chmod 600"},
		{name: "an empty password file", args: []string{"--repo", "file:///x", "--database", database, "--database-password-file", emptyPassword}, wantErr: "is empty"},
		{name: "a missing password file", args: []string{"--repo", "file:///x", "--database", database, "--database-password-file", filepath.Join(dir, "nope")}, wantErr: "--database-password-file"},
		{name: "a password file without a database", args: []string{"--repo", "file:///x", "--database-password-file", password}, wantErr: "--database-password-file goes with --database"},
		{name: "a signing key that is not one", args: []string{"--repo", "file:///x", "--database", database, "--signing-key", notAKey},
			wantErr: "--signing-key: job-signing key " + notAKey + ": not a Patchline job-signing key (make one with patchctl keys generate"},
		{name: "a signing key without a database", args: []string{"--repo", "file:///x", "--signing-key", keyFile}, wantErr: "--signing-key goes with --database"},
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
		{"no data dir", []string{"serve", "--repo-dir", dir, "--secrets", secrets}, 1, "--data-dir"},
		{"secrets readable by others", []string{"serve", "--repo-dir", dir, "--data-dir", dir, "--secrets", secrets}, 1, "chmod 600"},
		{"plain HTTP on a public address", []string{"serve", "--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--listen", "0.0.0.0:0"}, 1, "plain HTTP"},
		{"plain HTTP metrics on a public address", []string{"serve", "--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--metrics-listen", "0.0.0.0:0"}, 1, "listen 0.0.0.0:0: plain HTTP"},
		{"unknown flag", []string{"serve", "--colour"}, 2, "unknown flag: --colour"},
		{"unknown command", []string{"srve"}, 2, `unknown command "srve"`},
		{"a bad value", []string{"serve", "--lease", "soon"}, 2, `invalid argument "soon" for "--lease"`},
		{"profiler on a public address", []string{"serve", "--repo-dir", dir, "--data-dir", dir, "--secrets", secrets, "--debug-listen", "0.0.0.0:0"}, 2, "loopback address only"},
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

// TestRunRestore: patchd restore puts a backup in place of the store and
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
		{"a backup", []string{"restore", backup, "--data-dir", dir}, 0, "the store it replaced is kept as " + filepath.Join(dir, "patchline.db.before-restore-")},
		{"the old flag, with a warning", []string{"-data-dir", dir, "--restore", backup}, 0, "deprecated: flags without a command; running `patchd restore " + backup + " --data-dir " + dir + "`"},
		{"not a backup", []string{"restore", junk, "--data-dir", dir}, 1, "not an SQLite database"},
		{"no data directory", []string{"restore", backup}, 2, "give --data-dir DIR"},
		{"no backup", []string{"restore", "--data-dir", dir}, 2, "accepts 1 arg(s), received 0"},
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

// run runs patchd's Main with args and no environment, its output and
// errors both to out, and returns the exit code.
func run(args []string, out io.Writer) int {
	return Main(args, out, out, func(string) (string, bool) { return "", false })
}

// writeFile writes content to a new file name in a temporary directory,
// with mode, and returns its path.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// newKeyFile writes a new job-signing key file and returns the key and
// the file.
func newKeyFile(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "job-signing-key.pem")
	if err := signingkey.WriteNew(p, key); err != nil {
		t.Fatal(err)
	}
	return key, p
}

// TestRunRefusesBadDatabaseSetups: patchd on PostgreSQL exits with a
// message that says what to do when its database or key will not do: no
// key, a key other than the one the database records or the one the data
// directory's agents pinned, a schema newer than it knows, a server that
// does not answer.
func TestRunRefusesBadDatabaseSetups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	secrets := writeFile(t, "secrets.json", `{"adminToken": "patchd-test-admin-token"}`, 0o600)
	key, keyFile := newKeyFile(t)
	other, _ := newKeyFile(t)

	// A database whose controller signs with another key.
	otherKeyDB := pgtest.DB(t)
	db, err := postgres.Open(ctx, otherKeyDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.RecordSigningKey(ctx, other.Public().(ed25519.PublicKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A database a newer patchd has used.
	newerDB := pgtest.DB(t)
	conn, err := pgx.Connect(ctx, newerDB)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO schema_migrations (version, name) VALUES (1, '0001_init.sql'), (999, '0999_future.sql')`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A data directory of the embedded store, whose agents pinned its key.
	sqliteDir := t.TempDir()
	if err := signingkey.WriteNew(filepath.Join(sqliteDir, "job-signing-key.pem"), other); err != nil {
		t.Fatal(err)
	}

	base := []string{"serve", "--repo-dir", dir, "--data-dir", t.TempDir(), "--secrets", secrets}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"a database without a signing key", []string{"--database", pgtest.DB(t)},
			[]string{"--database needs --signing-key FILE", "patchctl keys generate --out FILE", "job-signing-key.pem"}},
		{"a new store asked of a database", []string{"--database", pgtest.DB(t), "--signing-key", keyFile, "--init-store"},
			[]string{"--init-store is for the embedded store"}},
		{"another key than the database's", []string{"--database", otherKeyDB, "--signing-key", keyFile},
			[]string{"is not the key this database's controller signs with", signingkey.Fingerprint(key.Public().(ed25519.PublicKey)),
				signingkey.Fingerprint(other.Public().(ed25519.PublicKey)), "Give this patchd the key file every other patchd on the database uses"}},
		{"a data directory whose store's agents pinned another key", []string{"--database", pgtest.DB(t), "--signing-key", keyFile, "--data-dir", sqliteDir},
			[]string{"the data directory holds the job-signing key " + filepath.Join(sqliteDir, "job-signing-key.pem"), "Give --signing-key " + filepath.Join(sqliteDir, "job-signing-key.pem")}},
		{"a schema newer than this patchd", []string{"--database", newerDB, "--signing-key", keyFile},
			[]string{"the database's schema is version 999, newer than this patchd knows", "run the newer patchd"}},
		{"a server that does not answer", []string{"--database", "host=127.0.0.1 port=1 dbname=patchline connect_timeout=5 sslmode=disable", "--signing-key", keyFile},
			[]string{"connect to PostgreSQL at 127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			code := run(append(slices.Clone(base), tt.args...), &out)
			if code != 1 {
				t.Errorf("exit %d, want 1; output %q", code, out.String())
			}
			for _, want := range tt.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output %q does not say %q", out.String(), want)
				}
			}
		})
	}
}
