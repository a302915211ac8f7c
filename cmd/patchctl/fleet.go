package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/fleetsim"
	"github.com/patchline/patchline/protocol"
)

func newFleetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Make synthetic fleets for benchmarks, demos and the simulator",
	}
	cmd.AddCommand(newFleetGenerateCmd())
	return cmd
}

func newFleetGenerateCmd() *cobra.Command {
	var (
		opts fleetsim.GenerateOptions
		out  string
	)
	cmd := &cobra.Command{
		Use:   "generate --clients C --endpoints N --out DIR",
		Short: "Write a synthetic fleet repo, a state snapshot and a secrets file",
		Long: `generate writes under --out:

  fleet/         a fleet repo (Git, branch main, one commit) of --clients
                 clients, each with canary, pilot and broad rings selected by
                 the "ring" label, a baseline approving every update, a few
                 exclusions, and a hold on ` + fleetsim.HeldUpdate + ` that 'patchctl sim'
                 releases to measure commit-to-job latency
  state.json     a state snapshot of --endpoints endpoints reporting
                 --updates updates each, for 'patchctl plan' benchmarks
  secrets.json   the secrets file patchd and 'patchctl sim' read (mode 0600)

Windows are always open unless --realistic-windows; every ring soaks for
--soak (zero by default, so a rollout moves as fast as results come in).

  patchctl fleet generate --clients 100 --endpoints 10000 --out /tmp/fleet
  patchd --repo file:///tmp/fleet/fleet --secrets /tmp/fleet/secrets.json --data-dir /tmp/patchd
  patchctl sim --controller http://127.0.0.1:8420 --secrets /tmp/fleet/secrets.json \
      --clients 100 --endpoints 10000 --repo-dir /tmp/fleet/fleet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			g, err := fleetsim.Generate(cmd.Context(), out, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fleet repo  %s (commit %s, %d clients)\nsnapshot    %s (%d endpoints, %d updates each)\nsecrets     %s\n",
				g.RepoDir, protocol.ShortRevision(g.Revision), opts.Clients, g.StatePath, opts.Endpoints, opts.Updates, g.SecretsPath)
			return nil
		},
	}
	cmd.Flags().IntVar(&opts.Clients, "clients", 10, "number of clients")
	cmd.Flags().IntVar(&opts.Endpoints, "endpoints", 1000, "endpoints in the state snapshot")
	cmd.Flags().IntVar(&opts.Updates, "updates", 20, "updates each endpoint of the snapshot reports")
	cmd.Flags().DurationVar(&opts.Soak, "soak", 0, "soak time of every ring")
	cmd.Flags().BoolVar(&opts.RealisticWindows, "realistic-windows", false, "weeknight and weekend windows instead of always-open ones")
	cmd.Flags().StringVar(&out, "out", "", "output `DIR`")
	return cmd
}
