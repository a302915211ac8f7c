package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/render"
)

func newStatusCmd() *cobra.Command {
	var (
		cf     controllerFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "status --controller URL",
		Short: "Show the controller's applied and refused revisions and each client's compliance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("unknown format %q: want text or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return render.Status(cmd.OutOrStdout(), st)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
