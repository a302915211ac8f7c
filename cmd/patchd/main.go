// Command patchd is the Patchline controller: it follows a fleet repo,
// plans each client's patches against what agents report, and pushes
// signed jobs to agents over long-poll, ring by ring, inside maintenance
// windows. See README.md, "Running it for real".
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema/loader"
)

func main() {
	// patchd runs itself to evaluate each client's policy in a child
	// process it can kill (schema/loader): such a child does only that.
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses flags, runs the controller until SIGINT or SIGTERM and
// returns the exit code.
func run(args []string, stderr io.Writer) int {
	cfg, opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "patchd:", err)
		return 2
	}
	if cfg.Evaluator, err = loader.SelfEvaluator(); err != nil {
		fmt.Fprintln(stderr, "patchd:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.restore != "" {
		kept, err := reconciler.Restore(ctx, cfg.DataDir, opts.restore)
		if err != nil {
			fmt.Fprintln(stderr, "patchd: restore:", err)
			return 1
		}
		fmt.Fprintf(stderr, "patchd: the store in %s is now the backup %s", cfg.DataDir, opts.restore)
		if kept != "" {
			fmt.Fprintf(stderr, "; the store it replaced is kept as %s", kept)
		}
		fmt.Fprintln(stderr, ". Start patchd as usual.")
		return 0
	}
	debugAddr := opts.debugAddr
	if debugAddr != "" {
		if _, err := serveDebug(ctx, debugAddr, cfg.Logger); err != nil {
			fmt.Fprintln(stderr, "patchd:", err)
			return 2
		}
	}
	c, err := reconciler.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "patchd:", err)
		return 1
	}
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "patchd:", err)
		return 1
	}
	return 0
}

// options are patchd's flags that are not the controller's configuration.
type options struct {
	// debugAddr is the profiler's address; empty for none.
	debugAddr string
	// restore is a backup to restore into the data directory, after which
	// patchd exits.
	restore string
}

// parseFlags returns the controller's configuration and patchd's other
// options.
func parseFlags(args []string, stderr io.Writer) (cfg reconciler.Config, opts options, err error) {
	var (
		keyring, tokenFile  string
		allowedSigners      string
		trustFrom           string
		logLevel, logFormat string
		passwordFile        string
		signingKey          string
	)
	fs := flag.NewFlagSet("patchd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Repo.URL, "repo", "", "fleet repo `URL` to follow (https://, ssh://, git://, file://)")
	fs.StringVar(&cfg.Repo.Branch, "branch", source.DefaultBranch, "branch of the fleet repo to follow")
	fs.StringVar(&cfg.Repo.SSHKeyFile, "ssh-key", "", "private key `file` (deploy key) for ssh:// repos")
	fs.StringVar(&cfg.Repo.KnownHostsFile, "known-hosts", "", "known_hosts `file` for ssh:// repos")
	fs.StringVar(&tokenFile, "git-token-file", "", "`file` holding an access token for https:// repos")
	fs.StringVar(&cfg.RepoDir, "repo-dir", "", "follow a local fleet repository `DIR` instead of --repo (reloads when a commit lands)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "`DIR` for the SQLite store, the job-signing key and the repo clone (with --database, the clone only; one per patchd)")
	fs.StringVar(&cfg.Database, "database", "", "keep the store in PostgreSQL: a postgres:// `URL` or a key/value connection string, as libpq takes them (default: SQLite in --data-dir)")
	fs.StringVar(&passwordFile, "database-password-file", "", "`file` holding the password to connect to --database with (mode 0600)")
	fs.StringVar(&signingKey, "signing-key", "", "job-signing key `file` (from 'patchctl keys generate'), required with --database: every patchd on a database signs with it")
	fs.StringVar(&cfg.ReplicaName, "replica-name", "", "`name` of this patchd among the replicas on one --database, shown in /v1/status and the patchline_leader metric (default: the host name)")
	fs.BoolVar(&cfg.InitStore, "init-store", false, "start with a new, empty store in a --data-dir that holds a job-signing key but no store (patchd refuses otherwise: restore the store with --restore instead); every agent must enrol again")
	fs.StringVar(&cfg.Listen, "listen", reconciler.DefaultListen, "`address` of the agent API and the admin API")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", reconciler.DefaultMetricsListen, "`address` serving /metrics, and nothing else, to Prometheus (TLS and plain HTTP as for --listen)")
	fs.StringVar(&cfg.SecretsFile, "secrets", "", "JSON `file` with enrollment secrets per client, the admin token and the webhook secret (mode 0600)")
	fs.StringVar(&cfg.AgentReleases, "agent-releases", "", "`dir`ectory of signed agent releases (DIR/<version>/, written by patchctl release sign) offered to agents when policy asks for their version")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate `file` (for --listen and --metrics-listen)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key `file`")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
	fs.BoolVar(&cfg.Verify.RequireSigned, "require-signed", false, "refuse commits not signed by a key in --keyring or --allowed-signers")
	fs.StringVar(&keyring, "keyring", "", "`file` of armored OpenPGP public keys allowed to sign fleet commits")
	fs.StringVar(&allowedSigners, "allowed-signers", "", "`file` of SSH keys allowed to sign fleet commits, in git's allowed-signers format")
	fs.StringVar(&trustFrom, "trust-from", "", "with --require-signed, the `COMMIT` (full hash) trusted as it is until a revision is applied: every commit after it must be signed (needed on the first start)")
	fs.DurationVar(&cfg.Poll, "poll", time.Minute, "how often to fetch the fleet repo besides webhooks")
	fs.DurationVar(&cfg.Lease, "lease", 10*time.Minute, "how long a job handed to an agent waits for its result before it is offered again")
	fs.Float64Var(&cfg.EnrollRate, "enroll-rate", 10, "enrollments per second accepted after a burst of 50 (raise to onboard a large fleet at once); one source address or one client gets half")
	fs.StringVar(&cfg.FeedsDir, "feeds-dir", "", "`DIR` of public vulnerability feeds (CISA KEV, FIRST EPSS, NVD, Debian Security Tracker) under their publishers' file names; read again every minute")
	fs.DurationVar(&cfg.FeedsSync, "feeds-sync", 0, "fetch the feeds into --feeds-dir at this interval, e.g. 6h (default off: an air-gapped controller gets them from 'patchctl feeds fetch')")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&opts.restore, "restore", "", "replace the store in --data-dir with the backup `FILE` (from 'patchctl backup'), keeping the old one, and exit; patchd must be stopped")
	fs.StringVar(&opts.debugAddr, "debug-listen", "", "loopback `address` serving Go's profiler at /debug/pprof/ (for measuring; off by default)")

	// Limits of one client's policy evaluation, in a child process.
	cfg.EvalMemory = loader.DefaultMemoryLimit
	fs.DurationVar(&cfg.EvalTimeout, "eval-timeout", loader.DefaultTimeout, "wall-clock `time` one client's policy evaluation may take; past it the evaluation is killed and the client refused")
	fs.Var(&cfg.EvalMemory, "eval-memory", "`amount` of resident memory one client's policy evaluation may use, e.g. 512MiB; above it the evaluation is killed and the client refused")
	checkStatus := statusFlags(fs, &cfg.Status)

	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	if cfg.EvalTimeout <= 0 {
		return cfg, opts, fmt.Errorf("--eval-timeout %v: must be positive", cfg.EvalTimeout)
	}
	if fs.NArg() > 0 {
		return cfg, opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := checkStatus(); err != nil {
		return cfg, opts, err
	}
	if cfg.Lease <= 0 {
		return cfg, opts, fmt.Errorf("--lease %v: must be positive", cfg.Lease)
	}
	if cfg.FeedsSync < 0 || (cfg.FeedsSync > 0 && cfg.FeedsSync < time.Minute) {
		return cfg, opts, fmt.Errorf("--feeds-sync %v: give an interval of a minute or more (publishers update daily), or 0 for off", cfg.FeedsSync)
	}
	if cfg.FeedsSync > 0 && cfg.FeedsDir == "" {
		return cfg, opts, errors.New("--feeds-sync needs --feeds-dir DIR to keep the feeds in")
	}
	cfg.RepoBranch = cfg.Repo.Branch
	if cfg.RepoDir != "" && cfg.Repo.URL != "" {
		return cfg, opts, errors.New("give --repo or --repo-dir, not both")
	}
	if cfg.Verify.RequireSigned {
		if keyring == "" && allowedSigners == "" {
			return cfg, opts, errors.New("--require-signed needs --keyring FILE (OpenPGP keys) or --allowed-signers FILE (SSH keys), or both")
		}
		if keyring != "" {
			b, err := os.ReadFile(keyring)
			if err != nil {
				return cfg, opts, fmt.Errorf("--keyring: %w", err)
			}
			cfg.Verify.Keyring = string(b)
		}
		if allowedSigners != "" {
			b, err := os.ReadFile(allowedSigners)
			if err != nil {
				return cfg, opts, fmt.Errorf("--allowed-signers: %w", err)
			}
			cfg.Verify.AllowedSigners = string(b)
		}
		if trustFrom != "" {
			if !plumbing.IsHash(trustFrom) {
				return cfg, opts, fmt.Errorf("--trust-from %q: give the commit's full 40-hex-digit hash (git rev-parse COMMIT)", trustFrom)
			}
			cfg.Verify.TrustFrom = plumbing.NewHash(trustFrom)
		}
	} else if keyring != "" || allowedSigners != "" || trustFrom != "" {
		return cfg, opts, errors.New("--keyring, --allowed-signers and --trust-from are used only with --require-signed; add it")
	}
	if err := databaseFlags(&cfg, opts, passwordFile, signingKey); err != nil {
		return cfg, opts, err
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return cfg, opts, fmt.Errorf("--git-token-file: %w", err)
		}
		cfg.Repo.Token = string(bytes.TrimSpace(b))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, opts, fmt.Errorf("--log-level: %w", err)
	}
	handlerOpts := &slog.HandlerOptions{Level: level}
	switch logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, handlerOpts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, handlerOpts))
	default:
		return cfg, opts, fmt.Errorf("--log-format %q: want text or json", logFormat)
	}
	return cfg, opts, nil
}

// databaseFlags reads the files of --database-password-file and
// --signing-key into cfg, and refuses the flags that do not go with
// --database (which Config checks for the rest).
func databaseFlags(cfg *reconciler.Config, opts options, passwordFile, signingKey string) error {
	switch {
	case cfg.Database == "" && passwordFile != "":
		return errors.New("--database-password-file goes with --database")
	case cfg.Database == "" && signingKey != "":
		return errors.New("--signing-key goes with --database; the embedded store keeps its key in --data-dir (job-signing-key.pem)")
	case cfg.Database == "":
		return nil
	}
	if opts.restore != "" {
		return errors.New("--restore is for the embedded store in --data-dir; restore a PostgreSQL database with pg_restore (see README, \"Running on PostgreSQL\")")
	}
	if passwordFile != "" {
		b, err := readSecret(passwordFile)
		if err != nil {
			return fmt.Errorf("--database-password-file: %w", err)
		}
		// One line; its line break is not part of the password.
		cfg.DatabasePassword = strings.TrimRight(string(b), "\r\n")
		if cfg.DatabasePassword == "" {
			return fmt.Errorf("--database-password-file: %s is empty", passwordFile)
		}
	}
	if signingKey != "" {
		key, err := signingkey.Load(signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		cfg.SigningKey = key
	}
	return nil
}

// readSecret reads a file that holds a secret, refusing one that group or
// others may read.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// Windows reports made-up permission bits; there the file's ACL is the
	// operator's business.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: mode %04o lets group or others read it; run chmod 600 %s", path, perm, path)
	}
	return os.ReadFile(path)
}
