package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/patchline/patchline/internal/buildinfo"
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
	st := &protocol.Status{SourceError: v.lastErr, Refused: v.refused, Pending: v.pending, Store: c.store.health.status()}
	if !v.head.IsZero() {
		st.Head = v.head.String()
	}
	st.Replica, st.Leader = c.cfg.ReplicaName, c.cfg.ReplicaName
	st.Version = buildinfo.Version()
	if c.lease != nil {
		l, err := c.lease.Leader(ctx)
		if err != nil {
			return nil, err
		}
		st.Leader = ""
		if l.Live {
			st.Leader = l.Holder
		}
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

// summarise records a client's halted rollouts (recordHalts), then keeps
// its figures for Status, and the policy they were planned with, clearing
// the error of an earlier failed re-plan.
func (r *replanner) summarise(client string, pol appliedClient, known bool, endpoints int, fig metrics.Figures, res *plan.Result, now time.Time) error {
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
	// The audit log first: what the status shows is in it.
	if err := r.recordHalts(client, revision, cs.Halted, now); err != nil {
		return err
	}
	r.mu.Lock()
	r.summaries[client] = cs
	r.planned[client] = pol.digest()
	r.mu.Unlock()
	return nil
}

// recordHalts stores the client's halted rollouts when they differ from
// those stored: the store audits each halt that appeared and a resume for
// each that went (a commit with a resume entry, or a revision that no
// longer asks for the update), once per change. The halts stored are
// read at start (loadHalts), so a restart audits nothing again. A failure
// fails the re-plan, which the queue tries again: a halt is never missed.
func (r *replanner) recordHalts(client, revision string, halted []protocol.Halt, now time.Time) error {
	r.mu.Lock()
	before := r.halts[client]
	same := sameHalts(before, halted)
	r.mu.Unlock()
	if same {
		return nil
	}
	// The re-plan's context may be gone; the audit line must not be.
	n, err := r.store.RecordHalts(context.Background(), client, revision, halted, now)
	if err != nil {
		return &replanError{"store", fmt.Errorf("record halted rollouts: %w", err)}
	}
	r.mu.Lock()
	if len(halted) == 0 {
		delete(r.halts, client)
	} else {
		r.halts[client] = slices.Clone(halted)
	}
	r.mu.Unlock()
	r.commitStatus.Halts(revision, client, halted)
	if n > 0 {
		// Only the replica whose write audited the change logs it.
		logHaltChanges(r.log, client, revision, before, halted)
	}
	return nil
}

// loadHalts reads the halted rollouts stored before the start.
func (r *replanner) loadHalts(ctx context.Context) error {
	halts, err := r.store.Halts(ctx)
	if err != nil {
		return fmt.Errorf("read halted rollouts: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.halts = halts
	return nil
}

// sameHalts reports whether a and b halt the same rollouts (ring and
// update; the reason may have changed).
func sameHalts(a, b []protocol.Halt) bool {
	key := func(h protocol.Halt) string { return h.Ring + "\x00" + h.Update }
	set := make(map[string]bool, len(a))
	for _, h := range a {
		set[key(h)] = true
	}
	seen := make(map[string]bool, len(b))
	for _, h := range b {
		if !set[key(h)] {
			return false
		}
		seen[key(h)] = true
	}
	return len(seen) == len(set)
}
