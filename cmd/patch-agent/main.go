// Command patch-agent is the Patchline endpoint agent. It turns its flags
// into an agent.Config and runs the agent until SIGINT or SIGTERM.
//
// `patch-agent inventory` prints what the endpoint would report about its
// updates, without enrolling or contacting a controller.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/internal/tlsconf"
	"github.com/patchline/patchline/protocol"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr)) }

// Main runs patch-agent with args and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if len(args) > 0 && args[0] == "inventory" {
		return inventory(args[1:], stdout, stderr, log)
	}
	cfg, bs, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "patch-agent:", err)
		return 2
	}
	cfg.Logger = log
	cfg.Backend, err = newBackend(bs, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "patch-agent: --backend %s: %v\n", bs.name, err)
		return 2
	}
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "patch-agent:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		if errors.Is(err, agent.ErrRestart) {
			log.Info("exiting for the service manager to start the agent binary now in place", "status", exitRestart)
			return exitRestart
		}
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

// parseFlags builds the agent's configuration from the command line, reading
// the enrollment secret and CA files it names; the backend is returned by
// name for Main to build.
func parseFlags(args []string, stderr io.Writer) (cfg agent.Config, bs backendSpec, err error) {
	fs := flag.NewFlagSet("patch-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: patch-agent --controller URL[,URL...] --state-dir DIR [flags]\n"+
			"       patch-agent inventory [--backend B] [--format text|json] [--state-dir DIR]\n\nflags:\n")
		fs.PrintDefaults()
	}
	var (
		controller  = fs.String("controller", "", "controller base URL, https://… (http only to a loopback host or with --insecure); for several replicas, their URLs separated by commas, tried in turn when one is unreachable")
		secretFile  = fs.String("enroll-secret-file", "", "file holding the client's enrollment secret (needed for the first start only)")
		client      = fs.String("client", "", "client id this endpoint belongs to (needed for the first start only)")
		stateDir    = fs.String("state-dir", "", "directory for the agent's identity, pinned controller key and outbox")
		caFile      = fs.String("ca-file", "", "PEM file of CA certificates to verify the controller with, instead of the system pool")
		labels      = fs.String("labels", "", "endpoint labels, k=v,k=v")
		backendFlag = fs.String("backend", "auto", "package backend: auto, apt, winget, windows-update, choco, brew or sim")
		interval    = fs.Duration("report-interval", agent.DefaultReportInterval, "how often to report inventory between jobs (±10% jitter)")
		rebootCmd   = fs.String("reboot-command", defaultRebootCommand(), "command that reboots the endpoint when a job's policy calls for it")
		insecure    = fs.Bool("insecure", false, "allow a plain http controller URL to a non-loopback host")
		hostname    = fs.String("hostname", "", "hostname to report (default: this machine's)")
		simOS       = fs.String("sim-os", "", "with --backend sim: the OS family the simulated endpoint reports (windows, linux, macos; default: this machine's)")
		simFailures = fs.Float64("sim-failure-rate", 0, "with --backend sim: share of simulated installs that fail (0 to 1)")
		simInstall  = fs.Duration("sim-install-time", 0, "with --backend sim: how long each simulated install takes (default: at once)")
		releaseKey  = fs.String("release-key", "", "release public key `file` (patchctl release keygen's .pub) the agent's own updates must be signed with; without it the agent refuses them")
		confirm     = fs.Duration("update-confirm-timeout", selfupdate.DefaultConfirmTimeout, "how long a new agent binary has to check in before the previous one is restored")
	)
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, backendSpec{}, err
	}
	if fs.NArg() > 0 {
		return agent.Config{}, backendSpec{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *controller == "" || *stateDir == "" {
		return agent.Config{}, backendSpec{}, errors.New("--controller and --state-dir are required")
	}
	su, err := newSelfUpdater(*releaseKey, *stateDir, *confirm)
	if err != nil {
		return agent.Config{}, backendSpec{}, err
	}
	cfg = agent.Config{
		SelfUpdate:     su,
		Controller:     *controller,
		Insecure:       *insecure,
		Client:         *client,
		StateDir:       *stateDir,
		ReportInterval: *interval,
		RebootCommand:  strings.Fields(*rebootCmd),
		OS:             hostOS(),
	}
	cfg.Hostname = *hostname
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return agent.Config{}, backendSpec{}, fmt.Errorf("hostname: %w", err)
		}
		cfg.Hostname = h
	}
	if *backendFlag == backend.Sim {
		switch *simOS {
		case "":
		case "windows", "linux", "macos":
			cfg.OS = protocol.OS{Family: *simOS}
		default:
			return agent.Config{}, backendSpec{}, fmt.Errorf("--sim-os %q: want windows, linux or macos", *simOS)
		}
		if *simFailures < 0 || *simFailures > 1 {
			return agent.Config{}, backendSpec{}, fmt.Errorf("--sim-failure-rate %v: want a share between 0 and 1", *simFailures)
		}
		if *simInstall < 0 {
			return agent.Config{}, backendSpec{}, fmt.Errorf("--sim-install-time %v: must not be negative", *simInstall)
		}
		// A simulated endpoint must never reboot the machine it runs on:
		// without an explicit --reboot-command it only logs the reboot.
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "reboot-command" })
		if !explicit {
			cfg.RebootCommand = nil
		}
	} else if *simOS != "" || *simFailures != 0 || *simInstall != 0 {
		return agent.Config{}, backendSpec{}, errors.New("--sim-os, --sim-failure-rate and --sim-install-time only go with --backend sim")
	}
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return agent.Config{}, backendSpec{}, fmt.Errorf("--enroll-secret-file: %w", err)
		}
		cfg.EnrollSecret = strings.TrimSpace(string(b))
	}
	if *caFile != "" {
		pool, err := tlsconf.LoadCAFile("--ca-file", *caFile)
		if err != nil {
			return agent.Config{}, backendSpec{}, err
		}
		cfg.RootCAs = pool
	}
	l, err := parseLabels(*labels)
	if err != nil {
		return agent.Config{}, backendSpec{}, fmt.Errorf("--labels: %w", err)
	}
	cfg.Labels = l
	if *interval <= 0 {
		return agent.Config{}, backendSpec{}, fmt.Errorf("--report-interval %v: must be positive", *interval)
	}
	return cfg, backendSpec{name: *backendFlag, simFailureRate: *simFailures, simInstallTime: *simInstall}, nil
}

// parseLabels reads "k=v,k=v".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("label %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// backendSpec says which package backend to build.
type backendSpec struct {
	name string
	// simFailureRate and simInstallTime are --sim-failure-rate and
	// --sim-install-time, for the simulated backend.
	simFailureRate float64
	simInstallTime time.Duration
}

// newBackend builds the package backend bs names. The simulated one
// takes this host's OS family, a seed from the hostname (so simulated
// endpoints differ from each other) and keeps the simulated machine's state
// in the agent's state directory, so it survives a restart as a real
// machine's would. The apt backend keeps what it learned from changelogs
// under the state directory (in a temporary one when there is none, for
// `patch-agent inventory`).
func newBackend(bs backendSpec, cfg agent.Config) (backend.Backend, error) {
	seed := fnv.New64a()
	seed.Write([]byte(cfg.Hostname))
	opts := backend.Options{
		Apt: apt.Options{Logger: cfg.Logger},
		Sim: sim.Options{Seed: seed.Sum64(), Family: cfg.OS.Family, StateDir: cfg.StateDir, FailureRate: bs.simFailureRate,
			InstallTime: bs.simInstallTime},
	}
	if cfg.StateDir != "" {
		opts.Apt.CacheDir = filepath.Join(cfg.StateDir, "apt")
	}
	return backend.New(bs.name, opts)
}

// inventory is `patch-agent inventory`: it prints what this endpoint
// would report, as a table or as the report's JSON.
func inventory(args []string, stdout, stderr io.Writer, log *slog.Logger) int {
	fs := flag.NewFlagSet("patch-agent inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		backendFlag = fs.String("backend", backend.Auto, "package backend: auto (this machine's package managers), apt, winget, windows-update, choco, brew or sim")
		format      = fs.String("format", agent.FormatText, "output: text (a table) or json (the updates as a report carries them)")
		stateDir    = fs.String("state-dir", "", "the agent's state directory, to reuse what its backends keep there (apt's changelog facts, the simulated machine); default: none")
	)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintln(stderr, "patch-agent inventory: unexpected arguments:", strings.Join(fs.Args(), " "))
		return 2
	case *format != agent.FormatText && *format != agent.FormatJSON:
		fmt.Fprintf(stderr, "patch-agent inventory: --format %q: want text or json\n", *format)
		return 2
	}
	cfg := agent.Config{StateDir: *stateDir, OS: hostOS(), Logger: log}
	h, err := os.Hostname()
	if err != nil {
		fmt.Fprintln(stderr, "patch-agent inventory: hostname:", err)
		return 1
	}
	cfg.Hostname = h
	b, err := newBackend(backendSpec{name: *backendFlag}, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "patch-agent inventory: --backend %s: %v\n", *backendFlag, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ups, err := agent.Inventory(ctx, b)
	if err != nil {
		fmt.Fprintln(stderr, "patch-agent inventory:", err)
		return 1
	}
	if err := agent.WriteInventory(stdout, ups, *format); err != nil {
		fmt.Fprintln(stderr, "patch-agent inventory:", err)
		return 1
	}
	return 0
}

func defaultRebootCommand() string {
	if runtime.GOOS == "windows" {
		return "shutdown /r /t 60"
	}
	return "shutdown -r +1"
}

// hostOS names the operating system family as the fleet's selectors do.
func hostOS() protocol.OS {
	switch runtime.GOOS {
	case "darwin":
		return protocol.OS{Family: "macos"}
	case "windows":
		return protocol.OS{Family: "windows"}
	default:
		return protocol.OS{Family: runtime.GOOS, Version: linuxVersion()}
	}
}

// linuxVersion is "<ID> <VERSION_ID>" from /etc/os-release ("debian 12"),
// or "" when the file is missing.
func linuxVersion() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	return strings.TrimSpace(vals["ID"] + " " + vals["VERSION_ID"])
}
