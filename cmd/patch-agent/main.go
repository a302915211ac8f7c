// Command patch-agent is the Patchline endpoint agent. `patch-agent run`
// turns its flags into an agent.Config and runs the agent until SIGINT or
// SIGTERM; `patch-agent inventory` prints what the endpoint would report
// about its updates, without enrolling or contacting a controller;
// `patch-agent version` prints the version. Every flag has a PATCHLINE_*
// environment variable and a key in the config file (internal/cliconf).
//
// Exit codes: 0, 1 for a failure at run time, 2 for a command line,
// environment or config file to fix (not retried), 3 from run for
// "restart me" (reserved for the self-update that swapped the binary;
// units and services restart on it).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/cliconf"
)

func main() { os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)) }

// Main runs patch-agent with args, reading PATCHLINE_* variables with
// lookupEnv, and returns the process exit status (see the package comment).
func Main(args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	root := newRoot(stderr, lookupEnv)
	return cliconf.Execute(root, legacyArgs(root, args, stderr), stdout, stderr)
}

func newRoot(stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	def := defaultConfigFile(runtime.GOOS, lookupEnv)
	root := &cobra.Command{
		Use:   "patch-agent",
		Short: "The Patchline endpoint agent: reports this machine's updates and installs what the controller sends",
		Long: `patch-agent enrolls this endpoint with a Patchline controller (patchd),
reports its updates, and runs the signed jobs the controller hands it.

Every flag can also be given as an environment variable (PATCHLINE_ and
the flag's name in capitals, "-" as "_": --state-dir is
PATCHLINE_STATE_DIR) or as a key of the config file (` + def + `,
or --config FILE): flags win over variables, variables over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	run := newRunCmd(stderr, lookupEnv, def)
	root.AddCommand(run, newInventoryCmd(stderr, lookupEnv, def, cliconf.FlagNames(run)), newServiceCmd(), cliconf.VersionCmd())
	return root
}

// defaultConfigFile is the agent's config file on goos when --config
// and PATCHLINE_CONFIG name none; it need not exist.
func defaultConfigFile(goos string, lookupEnv func(string) (string, bool)) string {
	switch goos {
	case "windows":
		dir, ok := lookupEnv("ProgramData")
		if !ok || dir == "" {
			dir = `C:\ProgramData`
		}
		return dir + `\Patchline\agent.yaml`
	case "darwin":
		return "/Library/Application Support/Patchline/agent.yaml"
	default:
		return filepath.Join("/etc", "patch-agent", "agent.yaml")
	}
}

// legacyArgs turns the command line of patch-agent before it had
// commands (flags only, maybe with one dash) into `patch-agent run ...`,
// and single-dash flags of inventory into double-dash ones, with a
// warning on stderr: those keep working for one release.
func legacyArgs(root *cobra.Command, args []string, stderr io.Writer) []string {
	if len(args) == 0 || slices.Contains([]string{"-h", "--help", "-help"}, args[0]) {
		return args
	}
	name, rest, inserted := args[0], args[1:], false
	if strings.HasPrefix(args[0], "-") {
		name, rest, inserted = "run", args, true
	}
	cmd, _, err := root.Find([]string{name})
	if err != nil || cmd == root {
		return args
	}
	out, rewrote := []string{name}, false
	for _, a := range rest {
		if flag, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "="); strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(flag) > 1 && cmd.Flags().Lookup(flag) != nil {
			a, rewrote = "-"+a, true
		}
		out = append(out, a)
	}
	if !inserted && !rewrote {
		return args
	}
	fmt.Fprintf(stderr, "patch-agent: deprecated: %s; running `patch-agent %s` (the old form stops working in the next release)\n",
		map[bool]string{true: "flags without a command", false: "flags with one dash"}[inserted], strings.Join(out, " "))
	return out
}
