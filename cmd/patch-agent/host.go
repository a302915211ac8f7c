package main

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/protocol"
)

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
