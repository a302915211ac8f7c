package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema/loader"
)

// auditPageSize is how many audit entries report asks for at a time (the
// API's maximum).
const auditPageSize = 1000

func newReportCmd() *cobra.Command {
	var (
		cf                          controllerFlags
		client, month, repo, format string
		now                         nowFlag
		ff                          feedsFlag
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
			var st protocol.Status
			if err := fetchJSON(ctx, &cf, "/v1/status", &st); err != nil {
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
			body, err := cf.get(ctx, "/v1/state")
			if err != nil {
				return err
			}
			snap, err := protocol.DecodeSnapshot(body)
			body.Close()
			if err != nil {
				return fmt.Errorf("decode state: %w", err)
			}
			if err := ff.enrich(ctx, snap); err != nil {
				return err
			}
			entries, err := fetchAudit(ctx, &cf)
			if err != nil {
				return err
			}
			at := now.at()
			fleet, err := source.LoadRevision(ctx, loader.New(loader.Options{Now: at}), repo, rev)
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
	for _, f := range []string{"client", "month"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

// fetchJSON fetches path from the controller and decodes it into v.
func fetchJSON(ctx context.Context, cf *controllerFlags, path string, v any) error {
	body, err := cf.get(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// fetchAudit reads the controller's whole audit log, a page at a time.
func fetchAudit(ctx context.Context, cf *controllerFlags) ([]protocol.AuditEntry, error) {
	var all []protocol.AuditEntry
	after := int64(0)
	for {
		body, err := cf.get(ctx, fmt.Sprintf("/v1/audit?after=%d&limit=%d", after, auditPageSize))
		if err != nil {
			return nil, err
		}
		page, err := protocol.DecodeAuditPage(body)
		body.Close()
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if len(page.Entries) < auditPageSize || page.Next <= after {
			return all, nil
		}
		after = page.Next
	}
}
