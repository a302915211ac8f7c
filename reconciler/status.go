package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
)

// Status is what GET /v1/status answers and `patchctl status` shows.
type Status struct {
	// Head is the last branch head the controller applied or refused.
	Head string `json:"head"`
	// SourceError is the last failure to fetch or read the fleet repo.
	SourceError string `json:"sourceError,omitempty"`
	// Refused is the most recent refused revision.
	Refused *Refusal `json:"refused,omitempty"`
	// Revisions are the last applied and attempted revision per client.
	Revisions []RevisionStatus `json:"revisions"`
	// Clients are each client's figures from its last re-plan.
	Clients []ClientStatus `json:"clients"`
}

// Refusal is a revision the controller would not apply.
type Refusal struct {
	Revision string `json:"revision"`
	// Client is "" when the whole commit was refused.
	Client   string    `json:"client,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Problems []string  `json:"problems"`
	At       time.Time `json:"at"`
}

// RevisionStatus is the last applied and last attempted revision of one
// client ("" for the branch as a whole).
type RevisionStatus struct {
	Client        string    `json:"client"`
	Applied       string    `json:"applied,omitempty"`
	AppliedAt     time.Time `json:"appliedAt,omitzero"`
	Attempted     string    `json:"attempted"`
	AttemptStatus string    `json:"attemptStatus"`
}

// ClientStatus sums up one client.
type ClientStatus struct {
	Client   string `json:"client"`
	Revision string `json:"revision,omitempty"`
	// Known is false when the fleet repo has no such client.
	Known      bool    `json:"known"`
	Endpoints  int     `json:"endpoints"`
	Compliant  int     `json:"compliant"`
	Drifting   int     `json:"drifting"`
	Stale      int     `json:"stale"`
	Compliance float64 `json:"compliance"`
	// Missing counts desired updates not yet installed (pairs).
	Missing int `json:"missing"`
	// Halted lists rollouts stopped by failures.
	Halted    []Halt    `json:"halted,omitempty"`
	PlannedAt time.Time `json:"plannedAt"`
}

// Halt is one halted rollout.
type Halt struct {
	Update string `json:"update"`
	Ring   string `json:"ring"`
	Reason string `json:"reason"`
}

// Status reports the controller's view for the admin API.
func (c *Controller) Status(ctx context.Context) (*Status, error) {
	revs, err := c.store.Revisions(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("read revisions: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &Status{SourceError: c.lastErr, Refused: c.refused}
	if !c.head.IsZero() {
		st.Head = c.head.String()
	}
	for _, cr := range revs.Clients {
		rs := RevisionStatus{Client: cr.Client, Attempted: cr.LastAttempted.Hash, AttemptStatus: cr.LastAttempted.Status}
		if cr.LastApplied != nil {
			rs.Applied, rs.AppliedAt = cr.LastApplied.Hash, cr.LastApplied.At
		}
		st.Revisions = append(st.Revisions, rs)
	}
	for _, id := range clientsSorted(c.summaries) {
		st.Clients = append(st.Clients, c.summaries[id])
	}
	return st, nil
}

// summarise keeps a client's figures for Status.
func (c *Controller) summarise(client, revision string, known bool, endpoints int, fig metrics.Figures, res *plan.Result, now time.Time) {
	cs := ClientStatus{
		Client: client, Revision: revision, Known: known, PlannedAt: now, Endpoints: endpoints,
		Compliant: fig.Compliant, Drifting: fig.Drifting, Stale: fig.Stale, Compliance: fig.Compliance, Missing: fig.Missing,
	}
	for _, r := range res.Rollouts {
		if r.State == plan.RolloutHalted && r.Failed > 0 {
			cs.Halted = append(cs.Halted, Halt{Update: r.Update, Ring: r.Ring, Reason: r.Reason})
		}
	}
	c.mu.Lock()
	before := c.summaries[client].Halted
	c.summaries[client] = cs
	c.mu.Unlock()
	c.auditHalts(client, revision, before, cs.Halted, now)
}

// auditHalts appends to the audit log the halts that appeared since the
// client's previous plan, and a resume for each that went away (a commit
// with a resume entry, or a revision that no longer asks for the update).
// After a restart the first plan finds every current halt new, so a halt
// may be logged twice, never missed.
func (c *Controller) auditHalts(client, revision string, before, after []Halt, now time.Time) {
	key := func(h Halt) string { return h.Ring + "\x00" + h.Update }
	was := make(map[string]bool, len(before))
	for _, h := range before {
		was[key(h)] = true
	}
	is := make(map[string]bool, len(after))
	var entries []store.AuditEntry
	for _, h := range after {
		is[key(h)] = true
		if !was[key(h)] {
			entries = append(entries, haltEntry(store.AuditHalt, client, revision, h, now))
		}
	}
	for _, h := range before {
		if !is[key(h)] {
			entries = append(entries, haltEntry(store.AuditResume, client, revision, h, now))
		}
	}
	for _, e := range entries {
		// The request's context may be gone; the audit line must not be.
		if err := c.store.AppendAudit(context.Background(), e); err != nil {
			c.log.Error("append audit", "kind", e.Kind, "client", client, "err", err)
		}
	}
}

func haltEntry(kind store.AuditKind, client, revision string, h Halt, now time.Time) store.AuditEntry {
	detail, _ := json.Marshal(h)
	return store.AuditEntry{At: now, Kind: kind, Client: client, Revision: revision, Detail: detail}
}

// WriteText writes the status as the table `patchctl status` prints.
func (s *Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	head := s.Head
	if len(head) > 12 {
		head = head[:12]
	}
	fmt.Fprintf(tw, "Branch head:\t%s\n", orNone(head))
	if s.SourceError != "" {
		fmt.Fprintf(tw, "Fleet repo error:\t%s\n", s.SourceError)
	}
	if r := s.Refused; r != nil {
		scope := "whole commit"
		if r.Client != "" {
			scope = "client " + r.Client
		}
		fmt.Fprintf(tw, "Last refused:\t%s (%s, %s) at %s\n", short(r.Revision), scope, orNone(r.Reason), r.At.UTC().Format(time.RFC3339))
		for _, p := range r.Problems {
			fmt.Fprintf(tw, "\t  %s\n", p)
		}
	}
	fmt.Fprintf(tw, "\nCLIENT\tREVISION\tENDPOINTS\tCOMPLIANT\tDRIFTING\tSTALE\tCOMPLIANCE\tMISSING\tHALTED\n")
	applied := make(map[string]RevisionStatus)
	for _, r := range s.Revisions {
		applied[r.Client] = r
	}
	for _, c := range s.Clients {
		rev := short(c.Revision)
		if !c.Known {
			rev = "(not in repo)"
		} else if r := applied[c.Client]; r.Attempted != "" && r.Attempted != r.Applied {
			rev += " (newer refused)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\n", c.Client, rev, c.Endpoints, c.Compliant, c.Drifting, c.Stale, c.Compliance*100, c.Missing, len(c.Halted))
	}
	var halts []string
	for _, c := range s.Clients {
		for _, h := range c.Halted {
			halts = append(halts, fmt.Sprintf("%s\t%s\t%s\t%s", c.Client, h.Ring, h.Update, h.Reason))
		}
	}
	if len(halts) > 0 {
		fmt.Fprintf(tw, "\nHALTED ROLLOUTS (a commit with a resume entry lifts them)\nCLIENT\tRING\tUPDATE\tWHY\n%s\n", strings.Join(halts, "\n"))
	}
	return tw.Flush()
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return orNone(rev)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
