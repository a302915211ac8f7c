package reconciler

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/netaddr"
	"github.com/patchline/patchline/reconciler/commitstatus"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema/loader"
)

// Config is everything patchd is told at start. cmd/patchd builds it from
// flags; tests build it directly.
type Config struct {
	// DataDir holds the SQLite store, the job-signing key and the clone of
	// the fleet repo. With Database it holds the clone only: each patchd
	// on a database has a data directory of its own.
	DataDir string
	// InitStore lets patchd start with a new, empty store in a data
	// directory that holds a job-signing key but no store (lost, or
	// removed on purpose); without it patchd refuses, so a store that
	// went missing is restored rather than silently replaced.
	InitStore bool
	// Database, when set, keeps the store in PostgreSQL instead of SQLite
	// in DataDir: a postgres:// URL or a key/value connection string, as
	// libpq takes them. DatabasePassword, when set, is the password to
	// connect with, in place of one the string gives.
	Database         string
	DatabasePassword string
	// ReplicaName names this patchd among the replicas on one database,
	// in /v1/status and the patchline_leader metric's replica label
	// (default: the host name). It is letters, digits, '.', '_' and '-',
	// at most 63 of them.
	ReplicaName string
	// SigningKey is the job-signing key, required with Database (every
	// patchd on a database signs with the same key, which agents pin; the
	// database records its public half on the first start and refuses
	// another). Without Database it must be nil: the key lives in
	// DataDir.
	SigningKey ed25519.PrivateKey
	// Repo is the fleet repo to follow by URL. Repo.Dir is set by the
	// controller (a clone under DataDir).
	Repo source.Config
	// RepoDir, instead of Repo.URL, follows a local repository's branch
	// (RepoBranch) through filesystem notifications.
	RepoDir    string
	RepoBranch string
	// Poll is how often the repo is fetched besides webhooks (default 1m).
	Poll time.Duration
	// Verify says whether commits must be signed, by which keys, and from
	// which commit on before any revision is applied (its trust anchor;
	// New refuses to start without one while nothing is applied).
	Verify source.VerifyPolicy
	// SecretsFile holds enrollment secrets, the admin token and the
	// webhook secret. It is optional: without it, admin tokens and
	// enrollment tokens are all in the store (the first start makes the
	// admin token "bootstrap-admin" and writes it to DataDir/admin-token),
	// and webhooks are refused (the repo is polled).
	SecretsFile string
	// AgentReleases is the directory of signed agent releases served to
	// agents (reconciler/agentrelease); "" offers none.
	AgentReleases string
	// Listen is the address of the agent and admin API (default
	// 127.0.0.1:8420; port 0 picks a free one).
	Listen string
	// MetricsListen is the address that serves /metrics, and nothing
	// else, to Prometheus (default 127.0.0.1:9420; port 0 picks a free
	// one). The metrics name every client and its compliance, so they are
	// not served where agents connect.
	MetricsListen string
	// TLSCert and TLSKey serve the API and the metrics over TLS. Without
	// them, plain HTTP is refused on an address that is not loopback
	// unless Insecure is set.
	TLSCert, TLSKey string
	Insecure        bool
	// LongPollMax bounds one long-poll; Lease is how long a delivered job
	// waits for its result before it is offered again.
	LongPollMax time.Duration
	Lease       time.Duration
	// EnrollRate is the enrollments per second accepted after a burst
	// (default 10): raise it to onboard a large fleet at once. One source
	// address, or one client, gets half of it.
	EnrollRate float64
	// FeedsDir holds the public vulnerability feeds applied to every
	// reported update (package feeds); none when empty. FeedsSync, when
	// positive, has the controller fetch them into FeedsDir that often.
	FeedsDir  string
	FeedsSync time.Duration
	// Evaluator evaluates each client's policy in a child process under
	// EvalTimeout and EvalMemory (cmd/patchd passes its own binary,
	// loader.SelfEvaluator). When nil, policy is evaluated in the
	// controller's own process without limits: for tests only.
	Evaluator *loader.Command
	// EvalTimeout and EvalMemory bound one client's evaluation (default
	// loader.DefaultTimeout and loader.DefaultMemoryLimit): past them the
	// child is killed and the client refused.
	EvalTimeout time.Duration
	EvalMemory  loader.Bytes
	// Status, when enabled, posts a commit status to the fleet repo's
	// forge for each revision applied or refused and each change of a
	// client's halted rollouts (package commitstatus).
	Status commitstatus.Config
	// Clock tells the time and runs the timers (clock.Real when nil).
	Clock  clock.Clock
	Logger *slog.Logger
	// Notice takes what the operator must see once, beside the log: where
	// the bootstrap admin token is (default os.Stderr).
	Notice io.Writer
}

// Where patchd listens when Config.Listen or Config.MetricsListen is
// empty.
const (
	DefaultListen        = "127.0.0.1:8420"
	DefaultMetricsListen = "127.0.0.1:9420"
)

// withDefaults checks cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.DataDir == "":
		return cfg, errors.New("no data directory: pass --data-dir")
	case (cfg.Repo.URL == "") == (cfg.RepoDir == ""):
		return cfg, errors.New("give exactly one of --repo URL and --repo-dir DIR")
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return cfg, errors.New("--tls-cert and --tls-key go together")
	case cfg.Database != "" && len(cfg.SigningKey) != ed25519.PrivateKeySize:
		return cfg, errors.New("--database needs --signing-key FILE: every patchd on a database signs jobs with the same key, which agents pin. " +
			"Make one with patchctl keys generate --out FILE, or, moving from the embedded store, give the data directory's job-signing-key.pem")
	case cfg.Database == "" && cfg.SigningKey != nil:
		return cfg, errors.New("--signing-key goes with --database; the embedded store keeps its key in --data-dir (job-signing-key.pem)")
	case cfg.Database == "" && cfg.DatabasePassword != "":
		return cfg, errors.New("--database-password-file goes with --database")
	case cfg.Database != "" && cfg.InitStore:
		return cfg, errors.New("--init-store is for the embedded store in --data-dir; a PostgreSQL database that is new starts empty by itself")
	}
	if cfg.ReplicaName == "" {
		cfg.ReplicaName = defaultReplicaName()
	}
	if !validReplicaName(cfg.ReplicaName) {
		return cfg, fmt.Errorf("--replica-name %q: use letters, digits, '.', '_' and '-', at most 63 of them", cfg.ReplicaName)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.MetricsListen == "" {
		cfg.MetricsListen = DefaultMetricsListen
	}
	if cfg.TLSCert == "" && !cfg.Insecure {
		for _, addr := range []string{cfg.Listen, cfg.MetricsListen} {
			if onLoopback, _ := netaddr.IsLoopbackAddr(addr); !onLoopback {
				return cfg, fmt.Errorf("listen %s: plain HTTP is only served on loopback; give --tls-cert/--tls-key, or --insecure behind a TLS-terminating proxy", addr)
			}
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Notice == nil {
		cfg.Notice = os.Stderr
	}
	return cfg, nil
}
