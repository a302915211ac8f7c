package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/agent/service"
	"github.com/patchline/patchline/internal/cliconf"
	"github.com/patchline/patchline/internal/tlsconf"
	"github.com/patchline/patchline/protocol"
)

// newRunCmd is `patch-agent run`: the agent, until SIGINT or SIGTERM.
func newRunCmd(stderr io.Writer, lookupEnv func(string) (string, bool), configFile string) *cobra.Command {
	var f *runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until SIGINT or SIGTERM (the first start enrolls with --client and --enroll-token-file)",
		Example: `  patch-agent run --controller https://patchd.msp.example:8420 --client acme \
      --enroll-token-file /etc/patch-agent/enroll-token --state-dir /var/lib/patch-agent --labels ring=pilot
  patch-agent run --config /etc/patch-agent/agent.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Under the Windows service control manager, RunService hands
			// the work to the SCM's control handler and logs to the event
			// log; elsewhere it runs it until SIGINT or SIGTERM. A
			// configuration error is logged there too, and exits 2.
			var runErr error
			code := service.RunService(service.WindowsService, func(ctx context.Context, log *slog.Logger) int {
				cfg, err := f.config(cmd.Flags(), log)
				if err == nil {
					err = runAgent(ctx, cfg)
				}
				runErr = err
				var ee cliconf.ExitError
				switch {
				case err == nil:
					return 0
				case errors.As(err, &ee):
					return ee.Code
				default:
					return 2
				}
			}, slog.New(slog.NewTextHandler(stderr, nil)))
			if code == 0 {
				return nil
			}
			if runErr == nil {
				runErr = fmt.Errorf("stopped with status %d", code)
			}
			return cliconf.ExitError{Code: code, Err: runErr}
		},
	}
	f = addRunFlags(cmd.Flags())
	cliconf.Bind(cmd, configFile, lookupEnv, nil)
	return cmd
}

// runAgent is the body of `patch-agent run` once its configuration is
// built (backend included): it runs the agent until ctx ends. An agent
// that is not enrolled and has no way to enrol is a configuration error
// (exit 2 at once); other failures are cliconf.ExitErrors with code 1.
func runAgent(ctx context.Context, cfg agent.Config) error {
	a, err := agent.New(cfg)
	if err != nil {
		return cliconf.ExitError{Code: 1, Err: err}
	}
	if !a.Enrolled() && (cfg.Client == "" || cfg.EnrollSecret == "") {
		return fmt.Errorf("the state directory %s holds no enrollment yet: for the first start give --client ID and --enroll-token-file FILE "+
			"(or %s and %s, or client: and enroll-token-file: in the config file); the file holds a token from 'patchctl enroll create' or the client's enrollment secret",
			cfg.StateDir, cliconf.EnvName("client"), cliconf.EnvName("enroll-token-file"))
	}
	if err := a.Run(ctx); err != nil {
		if errors.Is(err, agent.ErrRestart) {
			cfg.Logger.Info("exiting for the service manager to start the agent binary now in place", "status", exitRestart)
			return cliconf.ExitError{Code: exitRestart, Err: err}
		}
		return cliconf.ExitError{Code: 1, Err: fmt.Errorf("agent stopped: %w", err)}
	}
	return nil
}

// runFlags are the values of patch-agent run's flags, before config
// checks them and reads the files they name.
type runFlags struct {
	controller, tokenFile, client, stateDir, caFile, labels string
	backend, rebootCmd, hostname, simOS                     string
	releaseKey                                              string
	interval, simInstall, confirm                           time.Duration
	insecure                                                bool
	simFailures                                             float64
}

// addRunFlags declares patch-agent run's flags on fs.
func addRunFlags(fs *pflag.FlagSet) *runFlags {
	f := &runFlags{}
	fs.SortFlags = false
	fs.StringVar(&f.controller, "controller", "", "controller base `URL`, https://… (http only to a loopback host or with --insecure); for several replicas, their URLs separated by commas, tried in turn when one is unreachable")
	fs.StringVar(&f.client, "client", "", "client `id` this endpoint belongs to (needed for the first start only)")
	fs.StringVar(&f.tokenFile, "enroll-token-file", "", "`file` holding an enrollment token from 'patchctl enroll create', or the client's enrollment secret (needed for the first start only)")
	fs.StringVar(&f.tokenFile, "enroll-secret-file", "", "the old name of --enroll-token-file")
	cliconf.Deprecate(fs, "enroll-secret-file", "use --enroll-token-file (the old name goes in the next release)")
	fs.StringVar(&f.stateDir, "state-dir", "", "`DIR` for the agent's identity, pinned controller key and outbox")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM `file` of CA certificates to verify the controller with, instead of the system pool")
	fs.StringVar(&f.labels, "labels", "", "endpoint labels, k=v,k=v")
	fs.StringVar(&f.backend, "backend", backend.Auto, "package backend: auto, apt, winget, windows-update, choco, brew or sim")
	fs.DurationVar(&f.interval, "report-interval", agent.DefaultReportInterval, "how often to report inventory between jobs (±10% jitter)")
	fs.StringVar(&f.rebootCmd, "reboot-command", defaultRebootCommand(), "command that reboots the endpoint when a job's policy calls for it")
	fs.BoolVar(&f.insecure, "insecure", false, "allow a plain http controller URL to a non-loopback host")
	fs.StringVar(&f.hostname, "hostname", "", "hostname to report (default: this machine's)")
	fs.StringVar(&f.simOS, "sim-os", "", "with --backend sim: the OS family the simulated endpoint reports (windows, linux, macos; default: this machine's)")
	fs.Float64Var(&f.simFailures, "sim-failure-rate", 0, "with --backend sim: share of simulated installs that fail (0 to 1)")
	fs.DurationVar(&f.simInstall, "sim-install-time", 0, "with --backend sim: how long each simulated install takes (default: at once)")
	fs.StringVar(&f.releaseKey, "release-key", "", "release public key `file` (patchctl release keygen's .pub) the agent's own updates must be signed with; without it the agent refuses them")
	fs.DurationVar(&f.confirm, "update-confirm-timeout", selfupdate.DefaultConfirmTimeout, "how long a new agent binary has to check in before the previous one is restored")
	return f
}

// parseFlags builds the agent's configuration from patch-agent run's
// flags in args alone (no environment, no config file), reading the
// enrollment token and CA files it names; the backend is returned by
// name.
func parseFlags(args []string, stderr io.Writer) (agent.Config, backendSpec, error) {
	fs := pflag.NewFlagSet("patch-agent run", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	f := addRunFlags(fs)
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, backendSpec{}, err
	}
	if fs.NArg() > 0 {
		return agent.Config{}, backendSpec{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return f.agentConfig(fs)
}

// config is agentConfig with the backend built and log as the logger.
func (f *runFlags) config(fs *pflag.FlagSet, log *slog.Logger) (agent.Config, error) {
	cfg, bs, err := f.agentConfig(fs)
	if err != nil {
		return cfg, err
	}
	cfg.Logger = log
	if cfg.Backend, err = newBackend(bs, cfg); err != nil {
		return cfg, fmt.Errorf("--backend %s: %w", bs.name, err)
	}
	return cfg, nil
}

// agentConfig checks the parsed flags of fs and reads the files they
// name; the backend is returned by name.
func (f *runFlags) agentConfig(fs *pflag.FlagSet) (cfg agent.Config, bs backendSpec, err error) {
	if f.controller == "" || f.stateDir == "" {
		return cfg, bs, fmt.Errorf("give --controller URL and --state-dir DIR (or %s and %s, or controller: and state-dir: in the config file)",
			cliconf.EnvName("controller"), cliconf.EnvName("state-dir"))
	}
	su, err := newSelfUpdater(f.releaseKey, f.stateDir, f.confirm)
	if err != nil {
		return cfg, bs, err
	}
	cfg = agent.Config{
		SelfUpdate:     su,
		Controller:     f.controller,
		Insecure:       f.insecure,
		Client:         f.client,
		StateDir:       f.stateDir,
		ReportInterval: f.interval,
		RebootCommand:  strings.Fields(f.rebootCmd),
		OS:             hostOS(),
		Hostname:       f.hostname,
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return agent.Config{}, bs, fmt.Errorf("hostname: %w", err)
		}
		cfg.Hostname = h
	}
	if f.backend == backend.Sim {
		switch f.simOS {
		case "":
		case "windows", "linux", "macos":
			cfg.OS = protocol.OS{Family: f.simOS}
		default:
			return agent.Config{}, bs, fmt.Errorf("--sim-os %q: want windows, linux or macos", f.simOS)
		}
		if f.simFailures < 0 || f.simFailures > 1 {
			return agent.Config{}, bs, fmt.Errorf("--sim-failure-rate %v: want a share between 0 and 1", f.simFailures)
		}
		if f.simInstall < 0 {
			return agent.Config{}, bs, fmt.Errorf("--sim-install-time %v: must not be negative", f.simInstall)
		}
		// A simulated endpoint must never reboot the machine it runs on:
		// without an explicit --reboot-command it only logs the reboot.
		if !fs.Changed("reboot-command") {
			cfg.RebootCommand = nil
		}
	} else if f.simOS != "" || f.simFailures != 0 || f.simInstall != 0 {
		return agent.Config{}, bs, errors.New("--sim-os, --sim-failure-rate and --sim-install-time only go with --backend sim")
	}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return agent.Config{}, bs, fmt.Errorf("--enroll-token-file: %w", err)
		}
		cfg.EnrollSecret = strings.TrimSpace(string(b))
		if cfg.EnrollSecret == "" {
			return agent.Config{}, bs, fmt.Errorf("--enroll-token-file %s is empty; put the enrollment token in it", f.tokenFile)
		}
	}
	if f.caFile != "" {
		pool, err := tlsconf.LoadCAFile("--ca-file", f.caFile)
		if err != nil {
			return agent.Config{}, bs, err
		}
		cfg.RootCAs = pool
	}
	l, err := parseLabels(f.labels)
	if err != nil {
		return agent.Config{}, bs, fmt.Errorf("--labels: %w", err)
	}
	cfg.Labels = l
	if f.interval <= 0 {
		return agent.Config{}, bs, fmt.Errorf("--report-interval %v: must be positive", f.interval)
	}
	return cfg, backendSpec{name: f.backend, simFailureRate: f.simFailures, simInstallTime: f.simInstall}, nil
}
