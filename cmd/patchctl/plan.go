package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/render"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

func newPlanCmd() *cobra.Command {
	var (
		repo, rev, base, stateFile, format string
		decisions                          bool
		now                                nowFlag
		ff                                 feedsFlag
		ef                                 evalFlags
	)
	cmd := &cobra.Command{
		Use:   "plan --repo DIR --state FILE [--rev REV] [--base REV]",
		Short: "Show what a policy revision does to the fleet: decisions and jobs",
		Long: `plan evaluates the fleet repository (the working tree, or --rev) against a
fleet state snapshot (--state, as written by 'patchctl state export' or the
controller's GET /v1/state) and prints every decision and the jobs the
controller would send at --now.

With --base it plans the base revision too, against the same state and
time, and prints what the change does: jobs added and removed and the
decisions that change, per client and ring. This is what CI posts on a
pull request (--format markdown).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := render.ParseFormat(format)
			if err != nil {
				return err
			}
			repo, err := repoDir(repo, rev != "" || base != "")
			if err != nil {
				return err
			}
			at := now.at()
			l, err := ef.loader(at)
			if err != nil {
				return err
			}
			revs := []string{rev}
			if base != "" {
				revs = append(revs, base)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			load := startLoad(ctx, l, repo, revs)
			snap, err := readSnapshot(stateFile)
			if err == nil {
				err = ff.enrich(ctx, snap)
			}
			if err != nil {
				cancel()
				load.wait()
				return err
			}
			fleets, errs := load.wait()
			if errs[0] != nil {
				return errs[0]
			}
			head, err := planFleet(fleets[0], describe(repo, rev), snap, at)
			if err != nil {
				return err
			}
			if base == "" {
				return render.Plan(cmd.OutOrStdout(), f, head, decisions)
			}
			if errs[1] != nil {
				return fmt.Errorf("base %s: %w", base, errs[1])
			}
			baseRes, err := planFleet(fleets[1], describe(repo, base), snap, at)
			if err != nil {
				return fmt.Errorf("base %s: %w", base, err)
			}
			return render.WriteChange(cmd.OutOrStdout(), f, render.Diff(baseRes, head))
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "fleet repository `DIR` (or any directory inside it)")
	cmd.Flags().StringVar(&rev, "rev", "", "plan this Git revision instead of the working tree")
	cmd.Flags().StringVar(&base, "base", "", "compare with this Git revision (the pull request's target branch)")
	cmd.Flags().StringVar(&stateFile, "state", "", "fleet state snapshot `FILE` (JSON)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, markdown or json")
	cmd.Flags().BoolVar(&decisions, "decisions", false, "with --format json, include every endpoint-update decision")
	cmd.Flags().Var(&now, "now", "plan at this RFC 3339 time instead of now")
	ff.register(cmd)
	ef.register(cmd)
	_ = cmd.MarkFlagRequired("state")
	return cmd
}

// readSnapshot decodes a state snapshot file.
func readSnapshot(path string) (*protocol.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	snap, err := protocol.DecodeSnapshot(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return snap, nil
}

// fleetLoad is the loading of the fleet at some revisions, under way
// while plan decodes the snapshot: the clients are evaluated in child
// processes, which use the cores the decoding leaves.
type fleetLoad struct {
	done   chan struct{}
	fleets []*schema.Fleet
	errs   []error
}

// startLoad loads the fleet at each of revs (the working tree for "") of
// repo with l, one after the other so that a client the revisions share
// is evaluated once, and stops at the first that fails.
func startLoad(ctx context.Context, l *loader.Loader, repo string, revs []string) *fleetLoad {
	fl := &fleetLoad{done: make(chan struct{}), fleets: make([]*schema.Fleet, len(revs)), errs: make([]error, len(revs))}
	go func() {
		defer close(fl.done)
		for i, rev := range revs {
			if fl.fleets[i], fl.errs[i] = loadFleet(ctx, l, repo, rev); fl.errs[i] != nil {
				return
			}
		}
	}()
	return fl
}

// wait returns the fleets and the error of each revision, once the load
// has ended.
func (fl *fleetLoad) wait() ([]*schema.Fleet, []error) {
	<-fl.done
	return fl.fleets, fl.errs
}

// planFleet plans fleet, loaded from where. A client with errors cannot be
// planned: plan refuses, like the controller, and prints the problems so
// the author can fix them.
func planFleet(fleet *schema.Fleet, where string, snap *protocol.Snapshot, at time.Time) (*plan.Result, error) {
	if err := fleetErrors(fleet, where); err != nil {
		return nil, err
	}
	return plan.Plan(fleet, snap, at, plan.Options{Decisions: true})
}

// fleetErrors returns an error listing a fleet's error-level problems.
func fleetErrors(fleet *schema.Fleet, where string) error {
	var msg string
	n := 0
	for _, p := range fleet.Problems {
		if p.Level == schema.LevelError {
			msg += "\n" + p.String()
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%s has %d error(s); run patchctl vet:%s", where, n, msg)
}
