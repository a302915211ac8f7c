package render

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchline/patchline/protocol"
)

// Status writes the status as the table `patchctl status` prints.
func Status(w io.Writer, s *protocol.Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	switch {
	case s.Replica == "":
	case s.Replica == s.Leader:
		fmt.Fprintf(tw, "Replica:\t%s (leads: follows the fleet repo and plans)\n", txt(s.Replica))
	case s.Leader == "":
		fmt.Fprintf(tw, "Replica:\t%s (follows; no replica leads now, one takes over within seconds)\n", txt(s.Replica))
	default:
		fmt.Fprintf(tw, "Replica:\t%s (follows %s: ask %s for the current head and client figures)\n", txt(s.Replica), txt(s.Leader), txt(s.Leader))
	}
	fmt.Fprintf(tw, "Branch head:\t%s\n", orNone(protocol.ShortRevision(s.Head)))
	if s.SourceError != "" {
		fmt.Fprintf(tw, "Fleet repo error:\t%s\n", txt(s.SourceError))
	}
	if r := s.Refused; r != nil {
		scope := "whole commit"
		if r.Client != "" {
			scope = "client " + txt(r.Client)
		}
		fmt.Fprintf(tw, "Last refused:\t%s (%s, %s) at %s\n", orNone(protocol.ShortRevision(r.Revision)), scope, orNone(txt(r.Reason)), r.At.UTC().Format(time.RFC3339))
		for _, p := range r.Problems {
			fmt.Fprintf(tw, "\t  %s\n", txt(p))
		}
	}
	if p := s.Pending; p != nil {
		fmt.Fprintf(tw, "Pending revision:\t%s: %s (since %s, %d attempts; retrying at %s)\n", orNone(protocol.ShortRevision(p.Revision)), txt(p.Error),
			rfc3339(p.Since), p.Attempts, rfc3339(p.NextAttempt))
	}
	switch st := s.Store; {
	case st.Failing:
		fmt.Fprintf(tw, "Store:\tWRITES FAILING since %s (/readyz answers 503); last failed write: %s at %s: %s\n", rfc3339(st.FailingSince), txt(st.LastErrorOp), rfc3339(st.LastErrorAt), txt(st.LastError))
	case st.LastError != "":
		fmt.Fprintf(tw, "Store:\tok since %s; last failed write: %s at %s: %s\n", rfc3339(st.RecoveredAt), txt(st.LastErrorOp), rfc3339(st.LastErrorAt), txt(st.LastError))
	}
	fmt.Fprintf(tw, "\nCLIENT\tREVISION\tENDPOINTS\tCOMPLIANT\tDRIFTING\tSTALE\tCOMPLIANCE\tMISSING\tUNAVAILABLE\tHALTED\n")
	applied := make(map[string]protocol.RevisionStatus)
	for _, r := range s.Revisions {
		applied[r.Client] = r
	}
	for _, c := range s.Clients {
		rev := orNone(protocol.ShortRevision(c.Revision))
		if !c.Known {
			rev = "(not in repo)"
		} else if len(c.Refused) > 0 {
			rev += " (refused at start)"
		} else if r := applied[c.Client]; r.Attempted != "" && r.Attempted != r.Applied {
			rev += " (newer refused)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%d\n", txt(c.Client), rev, c.Endpoints, c.Compliant, c.Drifting, c.Stale, c.Compliance*100, c.Missing, c.Unavailable, len(c.Halted))
	}
	var halts []string
	for _, c := range s.Clients {
		for _, h := range c.Halted {
			halts = append(halts, fmt.Sprintf("%s\t%s\t%s\t%s", txt(c.Client), txt(h.Ring), txt(h.Update), txt(h.Reason)))
		}
	}
	var failed []string
	for _, c := range s.Clients {
		if c.Error != "" {
			failed = append(failed, fmt.Sprintf("%s\t%s\t%s", txt(c.Client), c.ErrorAt.UTC().Format(time.RFC3339), txt(c.Error)))
		}
	}
	var refused []string
	for _, c := range s.Clients {
		for _, p := range c.Refused {
			refused = append(refused, fmt.Sprintf("%s\t%s\t%s", txt(c.Client), orNone(protocol.ShortRevision(c.Revision)), txt(p)))
		}
	}
	if len(refused) > 0 {
		fmt.Fprintf(tw, "\nREFUSED AT START (the revision last applied could not be evaluated again; no new jobs until a commit loads)\nCLIENT\tREVISION\tPROBLEM\n%s\n", strings.Join(refused, "\n"))
	}
	if len(failed) > 0 {
		fmt.Fprintf(tw, "\nRE-PLAN FAILING (retried with a backoff; figures are from the last good re-plan)\nCLIENT\tSINCE\tERROR\n%s\n", strings.Join(failed, "\n"))
	}
	if len(halts) > 0 {
		fmt.Fprintf(tw, "\nHALTED ROLLOUTS (a commit with a resume entry lifts them)\nCLIENT\tRING\tUPDATE\tWHY\n%s\n", strings.Join(halts, "\n"))
	}
	return tw.Flush()
}

// rfc3339 is a time in status, as the other times of status show.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
