package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
)

func newEndpointsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoints",
		Short: "List, revoke and delete the controller's enrolled endpoints",
		Long: `endpoints manages the endpoints enrolled with patchd.

  list     every endpoint, or one client's, with when it enrolled and last
           reported, and whether it is revoked (a read token)
  revoke   the endpoint's node key is refused from now on: its agent gets
           401 on every request and no more jobs; it leaves plans, state
           and compliance figures, but stays listed, revoked, with its
           history (an admin token)
  delete   the endpoint, its inventory, jobs and results are deleted (the
           audit log keeps their entries); its id is free (an admin token)

The machine of a revoked or deleted endpoint comes back only by enrolling
again with its client's enrollment secret (stop the agent, delete
identity.json in its state directory, start it), as a new endpoint; to keep
it out, rotate that secret too.`,
	}
	cmd.AddCommand(newEndpointsListCmd(), newEndpointsRevokeCmd(), newEndpointsDeleteCmd())
	return cmd
}

func newEndpointsListCmd() *cobra.Command {
	var (
		cf             controllerFlags
		client, format string
	)
	cmd := &cobra.Command{
		Use:   "list [--client ID]",
		Short: "List the enrolled endpoints, revoked ones too",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("unknown format %q: want text or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			eps, err := c.Endpoints(cmd.Context(), client)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(protocol.EndpointList{Endpoints: eps})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLIENT\tHOSTNAME\tENROLLED\tLAST REPORT\tREVOKED")
			for _, e := range eps {
				revoked := "-"
				if !e.RevokedAt.IsZero() {
					revoked = listTime(e.RevokedAt) + " by " + e.RevokedBy
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", textsafe.Terminal(e.ID), textsafe.Terminal(e.Client), textsafe.Terminal(e.Hostname),
					listTime(e.EnrolledAt), listTime(e.LastSeen), textsafe.Terminal(revoked))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&client, "client", "", "list only this client's endpoints")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newEndpointsRevokeCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an endpoint: its node key is refused and it gets no job from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			e, err := c.RevokeEndpoint(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s (%s, client %s) revoked at %s; its agent is refused from now on\n",
				textsafe.Terminal(e.ID), textsafe.Terminal(e.Hostname), textsafe.Terminal(e.Client), listTime(e.RevokedAt))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newEndpointsDeleteCmd() *cobra.Command {
	var cf controllerFlags
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an endpoint with its inventory, jobs and results (the audit log keeps them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			e, err := c.DeleteEndpoint(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s (%s, client %s) deleted; it may enroll again as a new endpoint\n",
				textsafe.Terminal(e.ID), textsafe.Terminal(e.Hostname), textsafe.Terminal(e.Client))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
