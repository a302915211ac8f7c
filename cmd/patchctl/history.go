package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/history"
)

func newHistoryCmd() *cobra.Command {
	var (
		repo, format, since string
		opts                history.Options
		ef                  evalFlags
	)
	cmd := &cobra.Command{
		Use:   "history [--repo DIR] [--client ID] [--update ID] [--since DATE]",
		Short: "Show the policy changes commit by commit, as an auditor reads them",
		Long: `history walks the fleet repository's branch (first parents of HEAD, newest
first) and prints every commit that changes a client's policy: its hash,
author, date, the pull or merge request it merged, and per client the
changes in policy terms, not as a text diff:

  + exclusion KB5034441 on hostnames ACME-SQL01 until 2026-12-31 (reason: ..., ticket PSA-1234)
  ~ ring pilot: soak 3d → 2d
  ~ approve rule security: minAge 2d → 1d
  ! refused by the controller: clients/acme/policy.cue:8:71: ...

--client keeps one client, --update the changes that name an update
(exclusions, requirements, resumes and rollbacks naming it, match globs
matching it), --since the commits from a date on.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != history.FormatText && format != history.FormatMarkdown && format != history.FormatJSON {
				return fmt.Errorf("unknown format %q: want text, markdown or json", format)
			}
			if since != "" {
				t, err := parseDate(since)
				if err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				opts.Since = t
			}
			repo, err := repoDir(repo, true)
			if err != nil {
				return err
			}
			l, err := ef.loader(time.Time{})
			if err != nil {
				return err
			}
			h, err := history.Build(cmd.Context(), l, repo, opts)
			if err != nil {
				return err
			}
			return h.Write(cmd.OutOrStdout(), format)
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "fleet repository `DIR` (a Git working tree, any directory inside it, or a bare repository)")
	cmd.Flags().StringVar(&opts.Client, "client", "", "show only this client's changes")
	cmd.Flags().StringVar(&opts.Update, "update", "", "show only changes that name this update `ID`")
	cmd.Flags().StringVar(&since, "since", "", "show only commits from this `DATE` on (YYYY-MM-DD, UTC, or RFC 3339)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, markdown or json")
	ef.register(cmd)
	return cmd
}

// parseDate reads a date (midnight UTC) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date such as 2026-11-01 or an RFC 3339 time", s)
	}
	return t, nil
}
