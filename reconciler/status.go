package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/plan"
)

// Status reports the controller's view for the admin API: the branch head,
// the revisions each client applied or refused, and each client's figures
// and last re-plan error.
func (c *Controller) Status(ctx context.Context) (*protocol.Status, error) {
	revs, err := c.store.Revisions(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("read revisions: %w", err)
	}
	v := c.revisions.view()
	st := &protocol.Status{SourceError: v.lastErr, Refused: v.refused}
	if !v.head.IsZero() {
		st.Head = v.head.String()
	}
	for _, cr := range revs.Clients {
		rs := protocol.RevisionStatus{Client: cr.Client, Attempted: cr.LastAttempted.Hash, AttemptStatus: cr.LastAttempted.Status}
		if cr.LastApplied != nil {
			rs.Applied, rs.AppliedAt = cr.LastApplied.Hash, cr.LastApplied.At
		}
		st.Revisions = append(st.Revisions, rs)
	}
	st.Clients = c.replanner.statusesAt(v.running)
	return st, nil
}

// statusesAt are the clients' summaries, sorted by client, each showing
// the revision its figures hold for. A client whose policy a commit did
// not change keeps its decisions and is not re-planned, but runs the new
// revision: it shows that one. A client whose policy changed shows the
// revision it was last planned at until its re-plan at the new one is
// done, so that no one takes the old figures for the new policy's.
func (r *replanner) statusesAt(running map[string]runningPolicy) []protocol.ClientStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]protocol.ClientStatus, 0, len(r.summaries))
	for _, id := range slices.Sorted(maps.Keys(r.summaries)) {
		cs := r.summaries[id]
		if p, ok := running[id]; ok && p.digest == r.planned[id] {
			cs.Revision = p.revision
		}
		out = append(out, cs)
	}
	return out
}

// statuses are the clients' summaries, sorted by client.
func (r *replanner) statuses() []protocol.ClientStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]protocol.ClientStatus, 0, len(r.summaries))
	for _, id := range slices.Sorted(maps.Keys(r.summaries)) {
		out = append(out, r.summaries[id])
	}
	return out
}

// summarise keeps a client's figures for Status, and the policy they were
// planned with, clearing the error of an earlier failed re-plan.
func (r *replanner) summarise(client string, pol appliedClient, known bool, endpoints int, fig metrics.Figures, res *plan.Result, now time.Time) {
	revision := pol.revision
	cs := protocol.ClientStatus{
		Client: client, Revision: revision, Known: known, PlannedAt: now, Endpoints: endpoints,
		Compliant: fig.Compliant, Drifting: fig.Drifting, Stale: fig.Stale, Compliance: fig.Compliance, Missing: fig.Missing,
		Unavailable: res.Summary[plan.Unavailable],
	}
	for _, ro := range res.Rollouts {
		if ro.State == plan.RolloutHalted && ro.Failed > 0 {
			cs.Halted = append(cs.Halted, protocol.Halt{Update: ro.Update, Ring: ro.Ring, Reason: ro.Reason})
		}
	}
	r.mu.Lock()
	before := r.summaries[client].Halted
	r.summaries[client] = cs
	r.planned[client] = pol.digest()
	r.mu.Unlock()
	r.auditHalts(client, revision, before, cs.Halted, now)
}

// auditHalts appends to the audit log the halts that appeared since the
// client's previous plan, and a resume for each that went away (a commit
// with a resume entry, or a revision that no longer asks for the update).
// After a restart the first plan finds every current halt new, so a halt
// may be logged twice, never missed.
func (r *replanner) auditHalts(client, revision string, before, after []protocol.Halt, now time.Time) {
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
		// The re-plan's context may be gone; the audit line must not be.
		if err := r.store.AppendAudit(context.Background(), e); err != nil {
			r.log.Error("append audit", "kind", e.Kind, "client", client, "err", err)
		}
	}
}

func haltEntry(kind protocol.AuditKind, client, revision string, h protocol.Halt, now time.Time) protocol.AuditEntry {
	detail, _ := json.Marshal(h)
	return protocol.AuditEntry{At: now, Kind: kind, Client: client, Revision: revision, Detail: detail}
}
