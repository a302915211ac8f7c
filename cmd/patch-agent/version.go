package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/buildinfo"
)

// newVersionCmd is `patch-agent version`.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print patch-agent's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Line("patch-agent"))
		},
	}
}
