package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

func newStateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Work with fleet state snapshots",
	}
	var (
		cf  controllerFlags
		out string
	)
	export := &cobra.Command{
		Use:   "export --controller URL --out FILE",
		Short: "Write the live fleet's state snapshot, to plan a pull request against it",
		Long: `export fetches GET /v1/state from patchd and writes it as a state snapshot
file that 'patchctl plan --state' reads. The file is validated before it is
written, and written through a temporary file so a failed export never
leaves half a snapshot behind.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			snap, err := c.State(cmd.Context())
			if err != nil {
				return err
			}
			if out == "-" {
				return protocol.EncodeSnapshot(cmd.OutOrStdout(), snap)
			}
			f, err := atomicfile.Create(out, 0o600)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			defer f.Discard()
			if err := protocol.EncodeSnapshot(f, snap); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if err := f.Commit(); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d endpoints\n", out, len(snap.Endpoints))
			return nil
		},
	}
	cf.register(export)
	export.Flags().StringVar(&out, "out", "state.json", "snapshot `FILE` to write (- for standard output)")
	cmd.AddCommand(export)
	return cmd
}
