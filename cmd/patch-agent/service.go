package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/patchline/patchline/agent/service"
	"github.com/patchline/patchline/internal/atomicfile"
)

// newServiceCmd is `patch-agent service`: install, uninstall, start, stop
// and status of the agent's service in this machine's service manager.
func newServiceCmd() *cobra.Command {
	return newServiceCmdWith(serviceDeps{newManager: service.New, executable: serviceExecutable})
}

// serviceDeps is what the service commands reach outside the process;
// tests replace them.
type serviceDeps struct {
	newManager func(service.Config) (service.Manager, error)
	// executable is the absolute path of this patch-agent binary.
	executable func() (string, error)
}

// The service commands' errors say which exit status they call for:
// serviceUsageError 2 (a flag or the config file to fix), serviceFailure
// 1 (the service manager refused or failed). main reads it with
// errors.As(err, &interface{ ExitCode() int }).
type (
	serviceUsageError struct{ error }
	serviceFailure    struct{ error }
)

func (serviceUsageError) ExitCode() int   { return 2 }
func (e serviceUsageError) Unwrap() error { return e.error }
func (serviceFailure) ExitCode() int      { return 1 }
func (e serviceFailure) Unwrap() error    { return e.error }

func serviceUsagef(format string, args ...any) error {
	return serviceUsageError{fmt.Errorf(format, args...)}
}

// serviceRun is a service command's RunE: an error of run that is not a
// serviceUsageError is a serviceFailure.
func serviceRun(run func(cmd *cobra.Command) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		err := run(cmd)
		var usage serviceUsageError
		if err == nil || errors.As(err, &usage) {
			return err
		}
		return serviceFailure{err}
	}
}

func newServiceCmdWith(deps serviceDeps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Install and control patch-agent as a service (Windows service, launchd daemon, systemd unit)",
		Long: `Install and control patch-agent as a service of this machine's service
manager: a Windows service "patch-agent" (automatic start, restarted after a
failure, logging to the Windows event log), the launchd daemon
dev.patchline.agent on macOS (` + service.PlistPath + `, output in
` + service.LaunchdLog + `), or the systemd unit
` + service.UnitPath + ` on Linux. The service runs
"patch-agent run --config FILE" and restarts the agent whenever it exits
with a non-zero status (3 after a self-update). Run these commands as root
or Administrator.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newServiceInstallCmd(deps))
	for _, c := range []struct {
		use, short string
		act        func(service.Manager, context.Context) error
	}{
		{"uninstall", "Stop the service and remove it (the config file stays)", service.Manager.Uninstall},
		{"start", "Start the installed service", service.Manager.Start},
		{"stop", "Stop the service, letting the install in progress finish", service.Manager.Stop},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   c.use,
			Short: c.short,
			Args:  cobra.NoArgs,
			RunE: serviceRun(func(cmd *cobra.Command) error {
				m, err := serviceManager(deps, "")
				if err != nil {
					return err
				}
				err = c.act(m, serviceContext(cmd))
				switch {
				case c.use == "uninstall" && errors.Is(err, service.ErrNotInstalled):
					fmt.Fprintf(cmd.OutOrStdout(), "patch-agent: nothing to uninstall: %v\n", err)
					return nil
				case errors.Is(err, service.ErrNotInstalled):
					return fmt.Errorf("%w (install it with patch-agent service install)", err)
				case err != nil:
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "patch-agent: service %s: done\n", c.use)
				return nil
			}),
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Say whether the service is installed and running",
		Args:  cobra.NoArgs,
		RunE: serviceRun(func(cmd *cobra.Command) error {
			m, err := serviceManager(deps, "")
			if err != nil {
				return err
			}
			st, err := m.Status(serviceContext(cmd))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), st)
			return nil
		}),
	})
	return cmd
}

// serviceConfigKeys are the flags of `patch-agent run` that `service
// install` takes to write a new config file, whose keys are the flag
// names.
var serviceConfigKeys = []struct{ name, usage string }{
	{"controller", "controller base URL, https://…; several replicas' URLs separated by commas"},
	{"client", "client id this endpoint belongs to (first start only)"},
	{"enroll-token-file", "file holding the enrollment token or the client's enrollment secret (first start only)"},
	{"state-dir", "the agent's state directory (default " + serviceDefaultStateDir() + ")"},
	{"ca-file", "PEM file of CA certificates to verify the controller with"},
	{"labels", "endpoint labels, k=v,k=v"},
	{"backend", "package backend: auto, apt, winget, windows-update, choco, brew or sim"},
	{"report-interval", "how often to report inventory between jobs (a duration, 1h)"},
	{"reboot-command", "command that reboots the endpoint when a job's policy calls for it"},
	{"hostname", "hostname to report (default: this machine's)"},
	{"release-key", "release public key file the agent's own updates must be signed with (patchctl release keygen's .pub)"},
	{"update-confirm-timeout", "how long a new agent binary has to check in before the previous one is restored (a duration, 10m)"},
}

func newServiceInstallCmd(deps serviceDeps) *cobra.Command {
	var (
		configPath string
		force      bool
		insecure   bool
		values     = make(map[string]*string, len(serviceConfigKeys))
	)
	cmd := &cobra.Command{
		Use:   "install [--config FILE] [run flags to write into FILE]",
		Short: "Install the service, writing its config file from run's flags if given",
		Long: `Install patch-agent as a service that runs "patch-agent run --config FILE"
with this binary, and starts at boot (on macOS, launchd starts it at once;
elsewhere run "patch-agent service start"). Installing again updates the
service.

With any of run's flags below, install first writes them to FILE as YAML
(keys are the flag names), refusing to replace an existing FILE unless
--force is given; without them, FILE must exist.`,
		Example: `  patch-agent service install --controller https://patchd.msp.example:8420 \
    --client acme --enroll-token-file /etc/patch-agent/enroll-token --labels ring=pilot
  patch-agent service start`,
		Args: cobra.NoArgs,
		RunE: serviceRun(func(cmd *cobra.Command) error {
			path, err := filepath.Abs(configPath)
			if err != nil {
				return serviceUsagef("--config %s: %v", configPath, err)
			}
			var set []string
			for _, k := range serviceConfigKeys {
				if cmd.Flags().Changed(k.name) {
					set = append(set, k.name)
				}
			}
			if cmd.Flags().Changed("insecure") {
				set = append(set, "insecure")
			}
			_, statErr := os.Stat(path)
			switch {
			case len(set) == 0 && errors.Is(statErr, fs.ErrNotExist):
				return serviceUsagef("no config file at %s: pass run's flags (--controller, and --client and --enroll-token-file for the first start) to write one, or --config FILE", path)
			case len(set) == 0 && statErr != nil:
				return serviceUsagef("--config %s: %v", path, statErr)
			case len(set) > 0 && statErr == nil && !force:
				return serviceUsagef("config file %s exists: pass --force to replace it with the flags given, or install without run's flags to keep it", path)
			case len(set) > 0:
				if err := writeServiceConfig(path, cmd.Flags(), values, insecure); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "patch-agent: wrote %s\n", path)
			}
			m, err := serviceManager(deps, path)
			if err != nil {
				return err
			}
			if err := m.Install(serviceContext(cmd)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "patch-agent: service installed, running with --config %s\n", path)
			if st, err := m.Status(serviceContext(cmd)); err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), st)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", serviceDefaultConfig(), "the agent's config file, which the service runs with")
	f.BoolVar(&force, "force", false, "replace an existing config file with run's flags given")
	for _, k := range serviceConfigKeys {
		values[k.name] = f.String(k.name, "", k.usage)
	}
	f.BoolVar(&insecure, "insecure", false, "allow a plain http controller URL to a non-loopback host")
	return cmd
}

// writeServiceConfig writes the run flags that were given to a new config
// file at path (0600, its directory made 0755): the keys in the order of
// serviceConfigKeys, state-dir defaulting to this OS's.
func writeServiceConfig(path string, flags *pflag.FlagSet, values map[string]*string, insecure bool) error {
	if !flags.Changed("controller") || strings.TrimSpace(*values["controller"]) == "" {
		return serviceUsagef("--controller is required to write a config file")
	}
	for _, k := range []struct{ name, example string }{{"report-interval", "1h"}, {"update-confirm-timeout", "10m"}} {
		if flags.Changed(k.name) {
			if d, err := time.ParseDuration(*values[k.name]); err != nil || d <= 0 {
				return serviceUsagef("--%s %q: want a positive duration such as %s", k.name, *values[k.name], k.example)
			}
		}
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, HeadComment: "patch-agent's configuration (keys are run's flags), written by patch-agent service install."}
	add := func(k string, v *yaml.Node) {
		doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	for _, k := range serviceConfigKeys {
		switch {
		case flags.Changed(k.name):
			add(k.name, str(*values[k.name]))
		case k.name == "state-dir":
			add(k.name, str(serviceDefaultStateDir()))
		}
	}
	if flags.Changed("insecure") {
		add("insecure", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(insecure)})
	}
	out, err := yaml.Marshal(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}})
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// serviceManager gives this machine's service manager for the agent run
// with the config file at configPath ("" for commands that only control
// the service).
func serviceManager(deps serviceDeps, configPath string) (service.Manager, error) {
	exe, err := deps.executable()
	if err != nil {
		return nil, fmt.Errorf("the agent's own path: %w", err)
	}
	if configPath == "" {
		configPath = serviceDefaultConfig()
	}
	return deps.newManager(service.Config{Exe: exe, ConfigPath: configPath})
}

// serviceExecutable is this binary's path, symlinks resolved, so that
// the service does not follow a link that changes later.
func serviceExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(exe)
}

func serviceContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// serviceDefaultConfig is where the agent's config file lives by default
// on this OS (the file `run` reads).
func serviceDefaultConfig() string { return defaultConfigFile(runtime.GOOS, os.LookupEnv) }

// serviceDefaultStateDir is the state directory `service install` writes
// into a new config file when --state-dir is not given; on Linux the
// unit's StateDirectory.
func serviceDefaultStateDir() string {
	switch runtime.GOOS {
	case "windows":
		return filepath.Join(serviceProgramData(), "Patchline", "state")
	case "darwin":
		return "/Library/Application Support/Patchline/state"
	}
	return "/var/lib/patch-agent"
}

func serviceProgramData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}
