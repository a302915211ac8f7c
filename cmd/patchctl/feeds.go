package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/feeds"
)

// feedsFlag is --feeds-dir of the commands that plan: the same feeds the
// controller applies, so a pull request's plan uses the same data.
type feedsFlag struct{ dir string }

func (f *feedsFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "feeds-dir", "", "`DIR` of vulnerability feeds, as patchd's --feeds-dir (see 'patchctl feeds fetch')")
}

// enrich applies the feeds to snap as the controller does before it plans
// (with no --feeds-dir, only severities derived from reported CVSS
// scores). A feed file that does not load is an error: a plan must not
// quietly differ from the controller's.
func (f *feedsFlag) enrich(ctx context.Context, snap *protocol.Snapshot) error {
	var set *feeds.Set
	if f.dir != "" {
		var err error
		if set, err = feeds.LoadDir(ctx, f.dir); err != nil {
			return fmt.Errorf("--feeds-dir %s: %w", f.dir, err)
		}
	}
	feeds.Enrich(snap, set)
	return nil
}

func newFeedsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feeds",
		Short: "Work with the public vulnerability feeds patchd applies",
	}
	var out, mirror string
	fetch := &cobra.Command{
		Use:   "fetch --out DIR [--mirror URL]",
		Short: "Download CISA KEV, FIRST EPSS, NVD and the Debian Security Tracker into DIR",
		Long: `fetch downloads the public vulnerability feeds into DIR under their
publishers' file names, the directory patchd reads with --feeds-dir. Run it
on a connected machine and copy DIR to an air-gapped controller, or point
it at the controller's own --feeds-dir. Requests are conditional (a feed
the publisher has not changed is not downloaded again), retried a few
times, and every download is validated before it replaces the file it
updates: a failed or garbled download leaves the previous copy in place.

--mirror fetches every file, under its publisher's name, from an internal
mirror of the feeds instead of from the publishers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out DIR is required")
			}
			cfg := feeds.DefaultFetchConfig(time.Now().Year())
			if mirror != "" {
				cfg = feeds.MirrorFetchConfig(mirror, time.Now().Year())
			}
			rep, err := feeds.Fetch(cmd.Context(), cfg, out)
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "FEED\tFILE\tOUTCOME")
			failed := 0
			for _, f := range rep.Files {
				outcome := string(f.Outcome)
				if f.Err != nil {
					outcome += ": " + f.Err.Error()
					failed++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Feed, f.File, outcome)
			}
			if ferr := tw.Flush(); err == nil {
				err = ferr
			}
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d feed file(s) could not be fetched; their previous copies stay in %s", failed, out)
			}
			return err
		},
	}
	fetch.Flags().StringVar(&out, "out", "", "feeds `DIR` (created if needed)")
	fetch.Flags().StringVar(&mirror, "mirror", "", "fetch from a mirror serving the publishers' files under their names at `URL`")
	cmd.AddCommand(fetch)
	return cmd
}
