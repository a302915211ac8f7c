package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/lookup"
	"github.com/patchline/patchline/internal/render"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/source"
)

func newWhyCmd() *cobra.Command {
	var (
		repo, rev, stateFile, endpoint, update string
		now                                    nowFlag
		ff                                     feedsFlag
		ef                                     evalFlags
	)
	cmd := &cobra.Command{
		Use:   "why --repo DIR --state FILE --endpoint ID|HOSTNAME --update ID|NAME",
		Short: "Explain the decision for one endpoint and update, rule by rule",
		Long: `why prints the chain behind one decision: the ring that selects the
endpoint, the approve rule or requirement that makes the update desired,
the evidence of the update's data the approve rules weighed (known
exploitation, CVEs, CVSS, EPSS, severity, release time) with where each
value came from (the endpoint, a public feed and when it was fetched, or the
fleet's first sighting), any exclusion or freeze, the update's progress
through the earlier rings with their times, the maintenance window, and the
decision. Every rule is cited as path:line with the commit that last
changed that line.

--endpoint takes the endpoint's id or its hostname (in any case; when
several endpoints share it, why lists their ids). --update takes the
update's id, or its package name when the endpoint reports one version
of it (several are listed with their ids).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := repoDir(repo, rev != "")
			if err != nil {
				return err
			}
			at := now.at()
			snap, err := readSnapshot(stateFile)
			if err != nil {
				return err
			}
			if err := ff.enrich(cmd.Context(), snap); err != nil {
				return err
			}
			ep, err := lookup.Endpoint(snap, endpoint)
			if err != nil {
				return err
			}
			u, err := lookup.Update(ep, update)
			if err != nil {
				return err
			}
			l, err := ef.loader(at)
			if err != nil {
				return err
			}
			fleet, err := loadFleet(cmd.Context(), l, repo, rev)
			if err != nil {
				return err
			}
			if err := fleetErrors(fleet, describe(repo, rev)); err != nil {
				return err
			}
			x, err := plan.Explain(fleet, snap, at, ep.ID, u.ID)
			if err != nil {
				return err
			}
			blameRev := rev
			if blameRev == "" {
				blameRev = "HEAD"
			}
			return render.Why(cmd.OutOrStdout(), x, func(rule string) string {
				return blameRule(repo, blameRev, rule)
			})
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "fleet repository `DIR` (or any directory inside it)")
	cmd.Flags().StringVar(&rev, "rev", "", "explain this Git revision instead of the working tree")
	cmd.Flags().StringVar(&stateFile, "state", "", "fleet state snapshot `FILE` (JSON)")
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "endpoint `ID` or hostname")
	cmd.Flags().StringVar(&update, "update", "", "update `ID` (a KB, or name@version for package sources) or package name")
	cmd.Flags().Var(&now, "now", "explain at this RFC 3339 time instead of now")
	ff.register(cmd)
	ef.register(cmd)
	for _, f := range []string{"state", "endpoint", "update"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

// blameRule describes the commit that last changed the line a rule
// ("path:line") cites, or "" when the repository has no history for it (a
// plain directory, or a file not committed yet).
func blameRule(repo, rev, rule string) string {
	i := strings.LastIndexByte(rule, ':')
	if i < 0 {
		return ""
	}
	line, err := strconv.Atoi(rule[i+1:])
	if err != nil {
		return ""
	}
	lc, err := source.LastChange(repo, rev, rule[:i], line)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s %s %s: %q", protocol.ShortRevision(lc.Commit), lc.Date.UTC().Format("2006-01-02"), lc.Author, lc.Subject)
}
