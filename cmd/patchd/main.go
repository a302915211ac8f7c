// Command patchd is the Patchline controller: it follows a fleet repo,
// plans each client's patches against what agents report, and pushes
// signed jobs to agents over long-poll, ring by ring, inside maintenance
// windows. See README.md, "Running it for real".
//
// `patchd serve` runs the controller, `patchd restore FILE` puts a backup
// in place of the store, `patchd version` prints the version. Every flag
// has a PATCHLINE_* environment variable and a key in the config file
// (internal/cliconf).
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchline/patchline/internal/cliconf"
	"github.com/patchline/patchline/schema/loader"
)

// DefaultConfigFile is the config file patchd reads when --config and
// PATCHLINE_CONFIG name none; it need not exist.
const DefaultConfigFile = "/etc/patchline/patchd.yaml"

func main() {
	// patchd runs itself to evaluate each client's policy in a child
	// process it can kill (schema/loader): such a child does only that.
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// Main runs patchd with args, reading PATCHLINE_* variables with
// lookupEnv, and returns the exit code: 0, 1 for a failure at run time,
// 2 for a command line, environment or config file to fix.
func Main(args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	root := newRoot(stderr, lookupEnv)
	return cliconf.Execute(root, legacyArgs(root, args, stderr), stdout, stderr)
}

func newRoot(stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	root := &cobra.Command{
		Use:   "patchd",
		Short: "The Patchline controller: follows a fleet repo and rolls patches out to agents",
		Long: `patchd follows a fleet repository of CUE policy, plans each client's
patches against what agents report, and hands signed jobs to agents ring
by ring, inside maintenance windows.

Every flag of patchd serve can also be given as an environment variable
(PATCHLINE_ and the flag's name in capitals, "-" as "_": --data-dir is
PATCHLINE_DATA_DIR) or as a key of the config file (` + DefaultConfigFile + `,
or --config FILE): flags win over variables, variables over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	serve := newServeCmd(stderr, lookupEnv)
	root.AddCommand(serve, newRestoreCmd(stderr, lookupEnv, cliconf.FlagNames(serve)), cliconf.VersionCmd())
	return root
}

// legacyArgs turns the command line of patchd before it had commands
// (flags only, some with one dash; --restore FILE) into today's, with a
// warning on stderr: those keep working for one release.
func legacyArgs(root *cobra.Command, args []string, stderr io.Writer) []string {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") || slices.Contains([]string{"-h", "--help", "-help"}, args[0]) {
		return args
	}
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		return args
	}
	out := make([]string, 0, len(args)+1)
	restore, dataDir := "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 {
			if serve.Flags().Lookup(name) != nil || name == "restore" {
				a = "-" + a
			}
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case strings.HasPrefix(a, "--") && (name == "restore" || name == "data-dir"):
			if !hasVal && i+1 < len(args) {
				i++
				val = args[i]
			}
			if name == "restore" {
				restore = val
			} else {
				dataDir = val
			}
			out = append(out, "--"+name, val)
		default:
			out = append(out, a)
		}
	}
	if restore != "" {
		out = []string{"restore", restore}
		if dataDir != "" {
			out = append(out, "--data-dir", dataDir)
		}
	} else {
		out = append([]string{"serve"}, out...)
	}
	fmt.Fprintf(stderr, "patchd: deprecated: flags without a command; running `patchd %s` (the old form stops working in the next release)\n", strings.Join(out, " "))
	return out
}

// memoryValue gives loader.Bytes the type name pflag wants.
type memoryValue struct{ *loader.Bytes }

func (memoryValue) Type() string { return "bytes such as 512MiB" }

var _ pflag.Value = memoryValue{}
