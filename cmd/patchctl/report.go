package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/reconciler/source"
)

func newReportCmd() *cobra.Command {
	var (
		cf                          controllerFlags
		client, month, repo, format string
		now                         nowFlag
		ff                          feedsFlag
		ef                          evalFlags
	)
	cmd := &cobra.Command{
		Use:   "report --controller URL --client ID --month YYYY-MM [--repo DIR]",
		Short: "Write a client's monthly patch compliance report (markdown, CSV or JSON)",
		Long: `report asks the controller for its state (GET /v1/state), its audit log
(GET /v1/audit) and the revision the client runs (GET /v1/status), loads
the client's policy at that revision from the fleet repository (--repo,
which must have fetched it), and writes the client's compliance report for
the month: endpoints, updates installed with their times, time from release
to install per severity against the client's SLA, every breach with the
exclusion or halt that explains it, jobs, and the policy revisions in force.

Markdown is for mailing to the client, CSV for a spreadsheet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != compliance.FormatMarkdown && format != compliance.FormatCSV && format != compliance.FormatJSON {
				return fmt.Errorf("unknown format %q: want markdown, csv or json", format)
			}
			ctx := cmd.Context()
			repo, err := repoDir(repo, true)
			if err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			rev := ""
			for _, r := range st.Revisions {
				if r.Client == client {
					rev = r.Applied
				}
			}
			if rev == "" {
				return fmt.Errorf("the controller runs no revision for client %q", client)
			}
			snap, err := c.State(ctx)
			if err != nil {
				return err
			}
			if err := ff.enrich(ctx, snap); err != nil {
				return err
			}
			entries, err := c.AuditAll(ctx)
			if err != nil {
				return err
			}
			at := now.at()
			l, err := ef.loader(at)
			if err != nil {
				return err
			}
			fleet, err := source.LoadRevision(ctx, l, repo, rev)
			if err != nil {
				return fmt.Errorf("load revision %s the controller runs for %q from %s (fetch the fleet repo first): %w", rev, client, repo, err)
			}
			r, err := compliance.Build(compliance.Input{Client: client, Month: month, Now: at, Snapshot: snap, Audit: entries, Fleet: fleet})
			if err != nil {
				return err
			}
			return r.Write(cmd.OutOrStdout(), format)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&client, "client", "", "client `ID`")
	cmd.Flags().StringVar(&month, "month", "", "calendar `month` to report, YYYY-MM, in the client's time zone")
	cmd.Flags().StringVar(&repo, "repo", ".", "fleet repository `DIR` holding the revision the controller runs")
	cmd.Flags().StringVar(&format, "format", "markdown", "output format: markdown, csv or json")
	cmd.Flags().Var(&now, "now", "report as of this RFC 3339 time instead of now")
	ff.register(cmd)
	ef.register(cmd)
	for _, f := range []string{"client", "month"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
