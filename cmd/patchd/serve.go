package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchline/patchline/internal/cliconf"
	"github.com/patchline/patchline/reconciler"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema/loader"
)

// newServeCmd is `patchd serve`: the controller, until SIGINT or SIGTERM.
func newServeCmd(stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	var f *serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the controller until SIGINT or SIGTERM",
		Example: `  patchd serve --repo-dir /srv/fleet --data-dir /var/lib/patchline --secrets /etc/patchline/secrets.json
  patchd serve --config /etc/patchline/patchd.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, opts, err := f.config(stderr)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, opts)
		},
	}
	f = addServeFlags(cmd.Flags())
	cliconf.Bind(cmd, DefaultConfigFile, lookupEnv, nil)
	return cmd
}

// serve runs the controller of cfg until SIGINT or SIGTERM.
func serve(ctx context.Context, cfg reconciler.Config, opts options) error {
	var err error
	if cfg.Evaluator, err = loader.SelfEvaluator(); err != nil {
		return cliconf.ExitError{Code: 1, Err: err}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.debugAddr != "" {
		if _, err := serveDebug(ctx, opts.debugAddr, cfg.Logger); err != nil {
			return err
		}
	}
	c, err := reconciler.New(ctx, cfg)
	if err != nil {
		return cliconf.ExitError{Code: 1, Err: err}
	}
	if err := c.Run(ctx); err != nil {
		return cliconf.ExitError{Code: 1, Err: err}
	}
	return nil
}

// options are patchd's flags that are not the controller's configuration.
type options struct {
	// debugAddr is the profiler's address; empty for none.
	debugAddr string
}

// serveFlags are the values of patchd serve's flags, before config checks
// and reads the files they name.
type serveFlags struct {
	cfg                 reconciler.Config
	opts                options
	keyring, tokenFile  string
	allowedSigners      string
	trustFrom           string
	logLevel, logFormat string
	passwordFile        string
	signingKey          string
	checkStatus         func() error
}

// parseFlags parses the flags of patchd serve in args (no environment, no
// config file) into the controller's configuration and patchd's other
// options.
func parseFlags(args []string, stderr io.Writer) (reconciler.Config, options, error) {
	fs := pflag.NewFlagSet("patchd serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := addServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return f.cfg, f.opts, err
	}
	if fs.NArg() > 0 {
		return f.cfg, f.opts, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return f.config(stderr)
}

// addServeFlags declares patchd serve's flags on fs.
func addServeFlags(fs *pflag.FlagSet) *serveFlags {
	f := &serveFlags{}
	cfg, opts := &f.cfg, &f.opts
	fs.SortFlags = false
	fs.StringVar(&cfg.Repo.URL, "repo", "", "fleet repo `URL` to follow (https://, ssh://, git://, file://)")
	fs.StringVar(&cfg.Repo.Branch, "branch", source.DefaultBranch, "branch of the fleet repo to follow")
	fs.StringVar(&cfg.Repo.SSHKeyFile, "ssh-key", "", "private key `file` (deploy key) for ssh:// repos")
	fs.StringVar(&cfg.Repo.KnownHostsFile, "known-hosts", "", "known_hosts `file` for ssh:// repos")
	fs.StringVar(&f.tokenFile, "git-token-file", "", "`file` holding an access token for https:// repos")
	fs.StringVar(&cfg.RepoDir, "repo-dir", "", "follow a local fleet repository `DIR` instead of --repo (reloads when a commit lands)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "`DIR` for the SQLite store, the job-signing key and the repo clone (with --database, the clone only; one per patchd)")
	fs.StringVar(&cfg.Database, "database", "", "keep the store in PostgreSQL: a postgres:// `URL` or a key/value connection string, as libpq takes them (default: SQLite in --data-dir)")
	fs.StringVar(&f.passwordFile, "database-password-file", "", "`file` holding the password to connect to --database with (mode 0600)")
	fs.StringVar(&f.signingKey, "signing-key", "", "job-signing key `file` (from 'patchctl keys generate'), required with --database: every patchd on a database signs with it")
	fs.StringVar(&cfg.ReplicaName, "replica-name", "", "`name` of this patchd among the replicas on one --database, shown in /v1/status and the patchline_leader metric (default: the host name)")
	fs.BoolVar(&cfg.InitStore, "init-store", false, "start with a new, empty store in a --data-dir that holds a job-signing key but no store (patchd refuses otherwise: put a backup in place with 'patchd restore' instead); every agent must enrol again")
	fs.StringVar(&cfg.Listen, "listen", reconciler.DefaultListen, "`address` of the agent API and the admin API")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", reconciler.DefaultMetricsListen, "`address` serving /metrics, and nothing else, to Prometheus (TLS and plain HTTP as for --listen)")
	fs.StringVar(&cfg.SecretsFile, "secrets", "", "JSON `file` with static enrollment secrets per client, the admin token and the webhook secret (mode 0600); optional: without it patchd writes a bootstrap admin token to <data-dir>/admin-token and agents enroll with tokens from 'patchctl enroll create'")
	fs.StringVar(&cfg.AgentReleases, "agent-releases", "", "`DIR` of signed agent releases (DIR/<version>/, written by 'patchctl release sign') offered to agents when policy asks for their version")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate `file` (for --listen and --metrics-listen)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key `file`")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)")
	fs.BoolVar(&cfg.Verify.RequireSigned, "require-signed", false, "refuse commits not signed by a key in --keyring or --allowed-signers")
	fs.StringVar(&f.keyring, "keyring", "", "`file` of armored OpenPGP public keys allowed to sign fleet commits")
	fs.StringVar(&f.allowedSigners, "allowed-signers", "", "`file` of SSH keys allowed to sign fleet commits, in git's allowed-signers format")
	fs.StringVar(&f.trustFrom, "trust-from", "", "with --require-signed, the `COMMIT` (full hash) trusted as it is until a revision is applied: every commit after it must be signed (needed on the first start)")
	fs.DurationVar(&cfg.Poll, "poll", time.Minute, "how often to fetch the fleet repo besides webhooks")
	fs.DurationVar(&cfg.Lease, "lease", 10*time.Minute, "how long a job handed to an agent waits for its result before it is offered again")
	fs.Float64Var(&cfg.EnrollRate, "enroll-rate", 10, "enrollments per second accepted after a burst of 50 (raise to onboard a large fleet at once); one source address or one client gets half")
	fs.StringVar(&cfg.FeedsDir, "feeds-dir", "", "`DIR` of public vulnerability feeds (CISA KEV, FIRST EPSS, NVD, Debian Security Tracker) under their publishers' file names; read again every minute")
	fs.DurationVar(&cfg.FeedsSync, "feeds-sync", 0, "fetch the feeds into --feeds-dir at this interval, e.g. 6h (default off: an air-gapped controller gets them from 'patchctl feeds fetch')")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&opts.debugAddr, "debug-listen", "", "loopback `address` serving Go's profiler at /debug/pprof/ (for measuring; off by default)")

	// Limits of one client's policy evaluation, in a child process.
	cfg.EvalMemory = loader.DefaultMemoryLimit
	fs.DurationVar(&cfg.EvalTimeout, "eval-timeout", loader.DefaultTimeout, "wall-clock `time` one client's policy evaluation may take; past it the evaluation is killed and the client refused")
	fs.Var(memoryValue{&cfg.EvalMemory}, "eval-memory", "`amount` of resident memory one client's policy evaluation may use, e.g. 512MiB; above it the evaluation is killed and the client refused")
	f.checkStatus = statusFlags(fs, &cfg.Status)
	return f
}

// config checks the parsed flags and reads the files they name into the
// controller's configuration; its logger writes to stderr.
func (f *serveFlags) config(stderr io.Writer) (reconciler.Config, options, error) {
	// checkStatus completes f.cfg.Status, so it runs before the copy.
	statusErr := f.checkStatus()
	cfg, opts := f.cfg, f.opts
	if cfg.EvalTimeout <= 0 {
		return cfg, opts, fmt.Errorf("--eval-timeout %v: must be positive", cfg.EvalTimeout)
	}
	if statusErr != nil {
		return cfg, opts, statusErr
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
		if f.keyring == "" && f.allowedSigners == "" {
			return cfg, opts, errors.New("--require-signed needs --keyring FILE (OpenPGP keys) or --allowed-signers FILE (SSH keys), or both")
		}
		if f.keyring != "" {
			b, err := os.ReadFile(f.keyring)
			if err != nil {
				return cfg, opts, fmt.Errorf("--keyring: %w", err)
			}
			cfg.Verify.Keyring = string(b)
		}
		if f.allowedSigners != "" {
			b, err := os.ReadFile(f.allowedSigners)
			if err != nil {
				return cfg, opts, fmt.Errorf("--allowed-signers: %w", err)
			}
			cfg.Verify.AllowedSigners = string(b)
		}
		if f.trustFrom != "" {
			if !plumbing.IsHash(f.trustFrom) {
				return cfg, opts, fmt.Errorf("--trust-from %q: give the commit's full 40-hex-digit hash (git rev-parse COMMIT)", f.trustFrom)
			}
			cfg.Verify.TrustFrom = plumbing.NewHash(f.trustFrom)
		}
	} else if f.keyring != "" || f.allowedSigners != "" || f.trustFrom != "" {
		return cfg, opts, errors.New("--keyring, --allowed-signers and --trust-from are used only with --require-signed; add it")
	}
	if err := databaseFlags(&cfg, f.passwordFile, f.signingKey); err != nil {
		return cfg, opts, err
	}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return cfg, opts, fmt.Errorf("--git-token-file: %w", err)
		}
		cfg.Repo.Token = string(bytes.TrimSpace(b))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cfg, opts, fmt.Errorf("--log-level: %w", err)
	}
	handlerOpts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, handlerOpts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, handlerOpts))
	default:
		return cfg, opts, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	return cfg, opts, nil
}
