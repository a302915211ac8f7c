package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
)

// Status reports the controller's view for the admin API.
func (c *Controller) Status(ctx context.Context) (*protocol.Status, error) {
	revs, err := c.store.Revisions(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("read revisions: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &protocol.Status{SourceError: c.lastErr, Refused: c.refused}
	if !c.head.IsZero() {
		st.Head = c.head.String()
	}
	for _, cr := range revs.Clients {
		rs := protocol.RevisionStatus{Client: cr.Client, Attempted: cr.LastAttempted.Hash, AttemptStatus: cr.LastAttempted.Status}
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
	cs := protocol.ClientStatus{
		Client: client, Revision: revision, Known: known, PlannedAt: now, Endpoints: endpoints,
		Compliant: fig.Compliant, Drifting: fig.Drifting, Stale: fig.Stale, Compliance: fig.Compliance, Missing: fig.Missing,
	}
	for _, r := range res.Rollouts {
		if r.State == plan.RolloutHalted && r.Failed > 0 {
			cs.Halted = append(cs.Halted, protocol.Halt{Update: r.Update, Ring: r.Ring, Reason: r.Reason})
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
func (c *Controller) auditHalts(client, revision string, before, after []protocol.Halt, now time.Time) {
	key := func(h protocol.Halt) string { return h.Ring + "\x00" + h.Update }
	was := make(map[string]bool, len(before))
	for _, h := range before {
		was[key(h)] = true
	}
	is := make(map[string]bool, len(after))
	var entries []protocol.AuditEntry
	for _, h := range after {
		is[key(h)] = true
		if !was[key(h)] {
			entries = append(entries, haltEntry(protocol.AuditHalt, client, revision, h, now))
		}
	}
	for _, h := range before {
		if !is[key(h)] {
			entries = append(entries, haltEntry(protocol.AuditResume, client, revision, h, now))
		}
	}
	for _, e := range entries {
		// The request's context may be gone; the audit line must not be.
		if err := c.store.AppendAudit(context.Background(), e); err != nil {
			c.log.Error("append audit", "kind", e.Kind, "client", client, "err", err)
		}
	}
}

func haltEntry(kind protocol.AuditKind, client, revision string, h protocol.Halt, now time.Time) protocol.AuditEntry {
	detail, _ := json.Marshal(h)
	return protocol.AuditEntry{At: now, Kind: kind, Client: client, Revision: revision, Detail: detail}
}
