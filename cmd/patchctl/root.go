package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/cliconf"
)

// exitError carries a specific exit code out of a command whose output
// already explained the failure (vet found problems, for example).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs patchctl with args and returns the process exit code. Tests call
// it directly.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(stderr, "patchctl:", err)
		return 1
	}
	return 0
}

// connectionEnv reads the environment variables of the connection flags
// (--controller, --token-file) and no others.
func connectionEnv(name string) (string, bool) {
	if name != cliconf.EnvName("controller") && name != cliconf.EnvName("token-file") {
		return "", false
	}
	return os.LookupEnv(name)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "patchctl",
		Short: "Manage a Patchline fleet repository: vet policy, preview a change's impact",
		Long: `patchctl works on a Patchline fleet repository: CUE files that hold each
client's patch baseline, exclusions, rollout rings and maintenance windows.

  patchctl init DIR        lay down a new fleet repo, ready to push
  patchctl vet [DIR]       check every client's policy, print every problem
  patchctl schema update   refresh the repo's copy of the schema (cue vet, editors)
  patchctl plan            what a change does: jobs, rings, windows (for PRs)
  patchctl why             the chain of rules behind one decision
  patchctl history         policy changes commit by commit, as semantic diffs
  patchctl status          what a running controller applies, refuses and sees
  patchctl report          a client's monthly compliance report
  patchctl tokens          create, list and revoke the controller's API tokens
  patchctl endpoints       endpoints with their ring and drift; list, revoke, delete
  patchctl keys generate   make a job-signing key for patchd --signing-key
  patchctl store migrate   copy a single-box store into PostgreSQL
  patchctl version         print the version

The commands that talk to patchd take --controller and --token-file from
PATCHLINE_CONTROLLER and PATCHLINE_TOKEN_FILE when they are not given
(the token itself from PATCHLINE_TOKEN).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// The connection flags of the commands that talk to patchd come
		// from PATCHLINE_CONTROLLER and PATCHLINE_TOKEN_FILE when not
		// given, as in CI jobs; no other flag reads the environment.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return cliconf.Apply(cmd.Flags(), cliconf.Sources{LookupEnv: connectionEnv})
		},
	}
	root.AddCommand(newEnrollCmd(), cliconf.VersionCmd())
	root.AddCommand(newInitCmd(), newVetCmd(), newSchemaCmd(), newPlanCmd(), newWhyCmd(), newStatusCmd(), newStateCmd(), newSimCmd(), newFleetCmd(), newHistoryCmd(), newReportCmd(), newBackupCmd(), newFeedsCmd(), newTokensCmd(), newEndpointsCmd(), newKeysCmd(), newStoreCmd(), newReleaseCmd())
	return root
}
