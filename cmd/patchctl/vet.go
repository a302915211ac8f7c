package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

func newVetCmd() *cobra.Command {
	var (
		rev       string
		now       nowFlag
		ef        evalFlags
		stateFile string
	)
	cmd := &cobra.Command{
		Use:   "vet [DIR]",
		Short: "Check every client's policy and print every problem at once",
		Long: `vet loads the fleet repository in DIR (default: the current directory;
any directory inside the repository will do),
from the working tree or, with --rev, from a Git revision, and prints every
problem of every client in one run, as path:line:col: message, each at the
place to change and saying what to write instead. Errors (exit status 1)
include schema violations (a field the schema does not know, with the
field probably meant; a bad duration or date; a value outside its range
or its allowed words), a client value that contradicts the root files
(naming both places), a client id that differs from its directory,
duplicate ring names, a ring naming a window that does not exist, unknown
time zones, exclusions without reason or until, an approve rule's minEPSS
outside 0 to 1 or malformed CVE id, an sla.knownExploited that is neither
a duration nor "cisa", and a client whose evaluation exceeds
--eval-timeout or --eval-memory. The checks beyond the schema run even
where the schema finds errors, on the rest of the policy. Warnings (exit
status 0) flag exclusions that expired or expire within 14 days, a last
ring that does not select every endpoint, emergency entries past their
until, and a copy of the schema in cue.mod/pkg that differs from this
patchctl's (run patchctl schema update). With --state, vet also warns
about each ring that no endpoint of the snapshot is in: it gets no update,
and while it has fewer endpoints than its minEndpoints the rings after it
wait.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			dir, err := repoDir(dir, rev != "")
			if err != nil {
				return err
			}
			l, err := ef.loader(now.at())
			if err != nil {
				return err
			}
			fleet, err := loadFleet(cmd.Context(), l, dir, rev)
			if err != nil {
				return err
			}
			if stateFile != "" {
				snap, err := readSnapshot(stateFile)
				if err != nil {
					return err
				}
				fleet.Problems = append(fleet.Problems, emptyRingWarnings(fleet, snap, stateFile)...)
			}
			errs := 0
			for _, p := range fleet.Problems {
				fmt.Fprintln(cmd.OutOrStdout(), p.String())
				if p.Level == schema.LevelError {
					errs++
				}
			}
			if errs > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d error(s) in %s\n", errs, describe(dir, rev))
				return exitError{1}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d client(s) OK\n", describe(dir, rev), len(fleet.Clients))
			return nil
		},
	}
	cmd.Flags().StringVar(&rev, "rev", "", "load this Git revision (branch, tag, commit, HEAD~1) instead of the working tree")
	cmd.Flags().Var(&now, "now", "judge expiry warnings and resume entries dated in the future at this RFC 3339 time instead of now")
	cmd.Flags().StringVar(&stateFile, "state", "", "also warn about rings that no endpoint of this fleet state snapshot `FILE` (JSON) is in")
	ef.register(cmd)
	return cmd
}

// emptyRingWarnings warns about each ring no endpoint of snap (read from
// file) is in, at the ring's position.
func emptyRingWarnings(fleet *schema.Fleet, snap *protocol.Snapshot, file string) []schema.Problem {
	var out []schema.Problem
	for _, e := range plan.EmptyRings(fleet, snap) {
		why := fmt.Sprintf("its select matches none of the client's %d endpoints in %s", e.Endpoints, file)
		if e.Selected > 0 {
			why = fmt.Sprintf("its select matches %d of the client's %d endpoints in %s, all in earlier rings", e.Selected, e.Endpoints, file)
		}
		msg := fmt.Sprintf("client %s: rings.%d (%s): no endpoint is in this ring: %s", e.Client, e.Index, e.Ring.Name, why)
		if e.Ring.MinEndpoints > 0 {
			msg += fmt.Sprintf("; with minEndpoints %d the rings after it wait", e.Ring.MinEndpoints)
		}
		out = append(out, schema.Problem{Pos: e.Ring.Pos, Level: schema.LevelWarning, Message: msg, Client: e.Client})
	}
	return out
}

func describe(dir, rev string) string {
	if rev == "" {
		return dir
	}
	return dir + "@" + rev
}

// nowFlag is an optional RFC 3339 time given on the command line; its zero
// value means the current time.
type nowFlag struct{ t time.Time }

func (n *nowFlag) String() string {
	if n.t.IsZero() {
		return ""
	}
	return n.t.Format(time.RFC3339)
}

func (n *nowFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-11-23T22:30:00Z")
	}
	n.t = t
	return nil
}

func (n *nowFlag) Type() string { return "time" }

// at is the flag's time, or the current time when it was not given.
func (n *nowFlag) at() time.Time {
	if n.t.IsZero() {
		return time.Now()
	}
	return n.t
}
