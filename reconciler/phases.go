package reconciler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// commit is one fleet commit on its way through the phases of apply.
type commit struct {
	head plumbing.Hash
	// base is the last head applied: head must descend from it.
	base plumbing.Hash
	now  time.Time
	// fleet is the loaded and vetted policy at head (phase load).
	fleet *schema.Fleet
	// clientProblems are the errors of clients whose files fail to load
	// (phase split): those clients keep their last good revision.
	clientProblems map[string][]string
	// touched are the clients whose policy changed (phase record).
	touched map[string]bool
}

// phase is one step of applying a commit. A phase returns nil to go on, a
// *refusal when the commit (or one client of it) must not run, or another
// error when the commit could not be judged (the repo or the store is not
// reachable): it is tried again on the next fetch.
type phase func(ctx context.Context, c *commit) error

// refusal is a verdict on a commit: it is recorded, shown in /v1/status and
// never retried, and the last good revision keeps running.
type refusal struct {
	// client is "" when the whole commit is refused.
	client   string
	reason   string
	problems []string
}

func (r *refusal) Error() string { return "revision refused: " + r.reason }

// phases are the steps of applying a commit, in order. Nothing from a
// commit reaches an endpoint before every check has passed: the policy
// changes in record, after verify, load and split.
func (r *revisions) phases() []phase {
	return []phase{r.verifyPhase, r.loadPhase, r.splitPhase, r.recordPhase, r.enqueuePhase}
}

// apply verifies, loads and vets a new head and moves every client it can
// forward. It returns an error when the head could not be judged (the
// repo or the store was not reachable, a policy evaluator could not
// start): nothing changed, and the caller tries the head again (follow).
// A verdict, applied or refused, is nil.
func (r *revisions) apply(ctx context.Context, head plumbing.Hash) error {
	r.mu.Lock()
	last, base := r.head, r.applied
	if head == base {
		// The branch went back to the revision that runs (a revert of a
		// refused head): nothing changes.
		r.head = head
	}
	r.mu.Unlock()
	if head == last || head == base {
		r.clearPending()
		return nil
	}
	c := &commit{head: head, base: base, now: r.clock.Now()}
	for _, p := range r.phases() {
		err := p(ctx, c)
		if err == nil {
			continue
		}
		var ref *refusal
		if errors.As(err, &ref) {
			err = r.refuse(ctx, head, ref, c.now)
		}
		if err == nil {
			r.clearPending()
		}
		return err
	}
	r.clearPending()
	return nil
}

// verifyPhase checks that head descends from the applied revision and,
// when required, that every commit since it is signed by an allowed key.
func (r *revisions) verifyPhase(ctx context.Context, c *commit) error {
	err := source.VerifyDir(r.repoDir, c.base, c.head, r.verify)
	var re *source.RefusedError
	if errors.As(err, &re) {
		return &refusal{reason: "verify", problems: []string{re.Reason}}
	}
	// Any other error is not a verdict on the revision (a missing object,
	// an unreadable keyring): it is tried again.
	if err != nil {
		return fmt.Errorf("could not verify: %w", err)
	}
	return nil
}

// loadPhase evaluates the policy at head. A client past the evaluation
// limits is one of the commit's problems; an evaluator that cannot run is
// not a verdict on the commit, which is tried again.
func (r *revisions) loadPhase(ctx context.Context, c *commit) error {
	fleet, err := r.loadFleet(ctx, c.head.String())
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, loader.ErrEvaluator) {
			return fmt.Errorf("could not load: %w", err)
		}
		return &refusal{reason: "invalid", problems: []string{err.Error()}}
	}
	c.fleet = fleet
	return nil
}

// splitPhase sorts the commit's problems: one in the shared files refuses
// the whole commit; one in a client's files refuses only that client.
func (r *revisions) splitPhase(ctx context.Context, c *commit) error {
	var root []string
	c.clientProblems = make(map[string][]string)
	for _, p := range c.fleet.Problems {
		if p.Level != schema.LevelError {
			continue
		}
		if p.Client == "" {
			root = append(root, p.String())
		} else {
			c.clientProblems[p.Client] = append(c.clientProblems[p.Client], p.String())
		}
	}
	if len(root) > 0 {
		return &refusal{reason: "invalid", problems: root}
	}
	return nil
}

// recordPhase stores the revision each client now runs (and the refusals
// of the clients that keep their last good one) in one transaction, then
// switches the policy in memory. A store that cannot record leaves the
// policy as it was, to be tried again.
func (r *revisions) recordPhase(ctx context.Context, c *commit) error {
	hash := c.head.String()
	revs := make([]store.Revision, 0, len(c.fleet.Clients)+len(c.clientProblems)+1)
	for _, id := range slices.Sorted(maps.Keys(c.fleet.Clients)) {
		revs = append(revs, store.Revision{Hash: hash, Status: store.RevisionApplied, At: c.now, Client: id})
	}
	revs = append(revs, store.Revision{Hash: hash, Status: store.RevisionApplied, At: c.now})
	for _, id := range slices.Sorted(maps.Keys(c.clientProblems)) {
		revs = append(revs, store.Revision{Hash: hash, Status: store.RevisionRefused, At: c.now, Client: id, Problems: c.clientProblems[id], Reason: "invalid"})
	}
	if err := r.store.RecordRevisions(ctx, revs); err != nil {
		return fmt.Errorf("could not record: %w", err)
	}

	// Only clients whose policy changed are re-planned: a commit to one
	// client's directory must reach that client's agents without waiting
	// behind a re-plan of the whole fleet. Clients whose files did not
	// change keep their decisions; they move to the new revision for the
	// jobs they get from now on.
	c.touched = make(map[string]bool)
	r.mu.Lock()
	for id, cl := range c.fleet.Clients {
		if old, ok := r.policy[id]; !ok || old.client == nil || old.client.Digest != cl.Digest {
			c.touched[id] = true
		}
		r.policy[id] = appliedClient{revision: c.fleet.Revision, client: cl}
	}
	for id := range r.policy {
		if _, ok := c.fleet.Clients[id]; !ok && c.clientProblems[id] == nil {
			// The client's directory is gone: its endpoints become
			// unknown-client, which is never a job.
			delete(r.policy, id)
			c.touched[id] = true
		}
	}
	r.head, r.applied = c.head, c.head
	for _, rev := range revs {
		if rev.Status == store.RevisionRefused {
			r.lastRefusal[rev.Client] = rev
		} else {
			delete(r.lastRefusal, rev.Client)
		}
	}
	r.mu.Unlock()

	for id := range c.fleet.Clients {
		r.metrics.Applied(id, hash, c.now)
	}
	r.metrics.Applied("", hash, c.now)
	for id, problems := range c.clientProblems {
		r.mu.Lock()
		r.refused = &protocol.Refusal{Revision: hash, Client: id, Reason: "invalid", Problems: problems, At: c.now}
		if p, ok := r.policy[id]; ok && p.client == nil {
			// Refused at start and still: the newest reason shows.
			p.refused = problems
			r.policy[id] = p
		}
		r.mu.Unlock()
		r.metrics.Refused(id, "invalid", c.now)
		logRefused(r.log, "policy revision refused for one client; it keeps its last good revision", hash, id, "invalid", problems)
		c.touched[id] = true
	}
	r.log.Info("policy revision applied", "revision", hash, "clients", len(c.fleet.Clients), "clients_replanned", len(c.touched), "clients_refused", len(c.clientProblems))
	r.commitStatus.Applied(hash, slices.Collect(maps.Keys(c.fleet.Clients)), c.clientProblems)
	return nil
}

// enqueuePhase queues a re-plan of every client the commit touched.
func (r *revisions) enqueuePhase(ctx context.Context, c *commit) error {
	for id := range c.touched {
		r.queue.Add(id)
	}
	return nil
}
