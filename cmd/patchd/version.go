package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/buildinfo"
)

// newVersionCmd is `patchd version`.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print patchd's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Line("patchd"))
		},
	}
}
