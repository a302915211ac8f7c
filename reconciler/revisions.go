package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/commitstatus"
	"github.com/patchline/patchline/reconciler/metrics"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// revisionStore is what revisions keeps in the store.
type revisionStore interface {
	// RecordRevisions records applied and refused revisions in one
	// transaction.
	RecordRevisions(ctx context.Context, rs []store.Revision) error
	// Revisions summarises the revisions recorded so far.
	Revisions(ctx context.Context, refusedLimit int) (store.RevisionStatus, error)
}

// enqueuer is where revisions sends the clients a commit touched.
type enqueuer interface{ Add(client string) }

// revisions owns the controller's policy: which revision each client runs,
// the branch head, the last refusal and the last failure to read the repo.
// It applies each new head as ordered phases (phases.go).
type revisions struct {
	clock   clock.Clock
	log     *slog.Logger
	store   revisionStore
	loader  *loader.Loader
	metrics *metrics.Metrics
	verify  source.VerifyPolicy
	// repoDir is where revisions are read from: the clone or Config.RepoDir.
	repoDir string
	queue   enqueuer
	// commitStatus posts each verdict on a commit to the forge; nil for none.
	commitStatus *commitstatus.Notifier

	mu sync.Mutex // guards the fields below
	// policy is the revision each client runs.
	policy map[string]appliedClient
	// head is the last branch head applied (fully or for some clients) or
	// refused; zero before the first.
	head plumbing.Hash
	// applied is the last branch head applied: a new head must descend
	// from it and, when signing is required, every commit since it must be
	// signed. A refused head never becomes the base of that check, or a
	// signed commit on top of a refused one would carry it in.
	applied plumbing.Hash
	// lastErr is the last failure to fetch or read the branch.
	lastErr string
	// refused is the most recent refused head and why.
	refused *protocol.Refusal
	// lastRefusal is, per client ("" for the whole fleet), the refusal
	// the store holds as its last attempted revision, if it is one: the
	// same verdict on the same head (after a restart) is not recorded
	// and audited again.
	lastRefusal map[string]store.Revision
	// pending is the head that could not be applied yet and is tried
	// again (follow); nil when none.
	pending *protocol.PendingRevision
}

// appliedClient is one client's policy at the revision it runs.
type appliedClient struct {
	revision string
	// client is nil when the revision the client last applied could not
	// be evaluated again after a restart; refused says why. Such a client
	// is refused, not unknown: it gets no plan, so no job is sent or
	// withdrawn, until a commit loads it.
	client  *schema.Client
	refused []string
}

// digest is the digest of the client's policy, "" when it has none.
func (p appliedClient) digest() string {
	if p.client == nil {
		return ""
	}
	return p.client.Digest
}

// Policy returns the policy client runs, and false when the fleet repo has
// no such client. The policy of a client refused at start has no client.
func (r *revisions) Policy(client string) (appliedClient, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.policy[client]
	return p, ok
}

// clients lists the clients that have a policy.
func (r *revisions) clients() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Keys(r.policy))
}

// revisionView is what /v1/status shows of revisions.
type revisionView struct {
	head    plumbing.Hash
	lastErr string
	refused *protocol.Refusal
	pending *protocol.PendingRevision
	// running maps each client to the revision it runs and its policy.
	running map[string]runningPolicy
}

// runningPolicy is the revision a client runs and the digest of its
// policy there ("" for a client refused at start).
type runningPolicy struct {
	revision, digest string
}

func (r *revisions) view() revisionView {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := revisionView{head: r.head, lastErr: r.lastErr, running: make(map[string]runningPolicy, len(r.policy))}
	if r.refused != nil {
		ref := *r.refused
		v.refused = &ref
	}
	if r.pending != nil {
		p := *r.pending
		v.pending = &p
	}
	for id, p := range r.policy {
		v.running[id] = runningPolicy{revision: p.revision, digest: p.digest()}
	}
	return v
}

// setLastErr records (or, with nil, clears) a failure to read the repo.
func (r *revisions) setLastErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastErr = ""
	if err != nil {
		r.lastErr = err.Error()
	}
}

// setPending shows head as waiting to be applied after attempts failed
// attempts, the last with err, and the next due at next.
func (r *revisions) setPending(head plumbing.Hash, err error, attempts int, next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.clock.Now()
	if r.pending != nil && r.pending.Revision == head.String() {
		since = r.pending.Since
	}
	r.pending = &protocol.PendingRevision{Revision: head.String(), Error: err.Error(), Since: since, Attempts: attempts, NextAttempt: next}
}

// clearPending forgets the pending head: it was applied or refused, or
// the branch moved back to the revision that runs.
func (r *revisions) clearPending() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = nil
}

// loadFleet loads and vets the fleet repo at rev.
func (r *revisions) loadFleet(ctx context.Context, rev string) (*schema.Fleet, error) {
	return source.LoadRevision(ctx, r.loader, r.repoDir, rev)
}

// restore reloads, after a restart, the revision each client last ran, so
// a restart neither loses a client's policy nor jumps it to a head that was
// refused. Every client it restores is queued for a re-plan. A client
// whose revision cannot be evaluated again (a limit, an error) is refused
// on its own, with its stored record left as it is; it holds no other
// client back. Only a store that cannot be read, or ctx's end, fails the
// restore, and, when signed commits are required and no revision was
// ever applied, a missing trust anchor: nothing would vouch for the first
// head's history.
func (r *revisions) restore(ctx context.Context) error {
	revs, err := r.store.Revisions(ctx, 1)
	if err != nil {
		return fmt.Errorf("read applied revisions: %w", err)
	}
	byRev := make(map[string][]string)
	r.mu.Lock()
	for _, cr := range revs.Clients {
		if cr.LastApplied != nil {
			r.metrics.Applied(cr.Client, cr.LastApplied.Hash, cr.LastApplied.At)
		}
		if cr.LastAttempted.Status == store.RevisionRefused {
			// After Applied, which clears the refused gauge: the newer
			// refusal stands.
			r.metrics.StillRefused(cr.Client, cr.LastAttempted.At)
			r.lastRefusal[cr.Client] = cr.LastAttempted
		}
		switch {
		case cr.LastApplied == nil:
		case cr.Client == "":
			r.head = plumbing.NewHash(cr.LastApplied.Hash)
			r.applied = r.head
		default:
			byRev[cr.LastApplied.Hash] = append(byRev[cr.LastApplied.Hash], cr.Client)
		}
	}
	if len(revs.Refused) > 0 {
		x := revs.Refused[0]
		r.refused = &protocol.Refusal{Revision: x.Hash, Client: x.Client, Reason: x.Reason, Problems: x.Problems, At: x.At}
	}
	if r.verify.RequireSigned && r.applied.IsZero() && r.verify.TrustFrom.IsZero() {
		r.mu.Unlock()
		return errors.New("--require-signed: no fleet revision has been applied yet, so nothing vouches for the history " +
			"of the first head; give --trust-from COMMIT, the last commit you trust as it is (check it by hand, e.g. " +
			"with git log --show-signature): every commit after it must be signed")
	}
	r.mu.Unlock()

	policy, err := r.reload(ctx, byRev)
	if err != nil {
		return err
	}
	now := r.clock.Now()
	r.mu.Lock()
	maps.Copy(r.policy, policy)
	r.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(policy)) {
		if p := policy[id]; p.client == nil {
			r.metrics.Refused(id, "invalid", now)
			r.log.Error("the revision this client last applied cannot be evaluated; it gets no new job until a commit loads", "client", id, "revision", p.revision, "problems", p.refused)
		}
		r.queue.Add(id)
	}
	return nil
}

// reload evaluates each client at the revision it last applied (byRev:
// revision → clients), every revision at once: the loader bounds how
// many evaluations run together, and its limits how long each may take.
func (r *revisions) reload(ctx context.Context, byRev map[string][]string) (map[string]appliedClient, error) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards policy
		policy = make(map[string]appliedClient)
	)
	for rev, ids := range byRev {
		wg.Go(func() {
			got := r.reloadRevision(ctx, rev, ids)
			mu.Lock()
			maps.Copy(policy, got)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reload applied revisions: %w", err)
	}
	return policy, nil
}

// reloadRevision evaluates clients ids at revision rev. Each that does not
// load is refused with the problems that stop it.
func (r *revisions) reloadRevision(ctx context.Context, rev string, ids []string) map[string]appliedClient {
	policy := make(map[string]appliedClient, len(ids))
	refuse := func(problems []string) map[string]appliedClient {
		for _, id := range ids {
			policy[id] = appliedClient{revision: rev, refused: problems}
		}
		return policy
	}
	files, hash, err := source.ReadRevision(ctx, r.repoDir, rev, r.loader.Wants)
	if err != nil {
		return refuse([]string{err.Error()})
	}
	fleet, err := r.loader.LoadClients(ctx, files, hash, ids)
	if err != nil {
		return refuse([]string{err.Error()})
	}
	problems := make(map[string][]string)
	for _, p := range fleet.Problems {
		if p.Level == schema.LevelError {
			problems[p.Client] = append(problems[p.Client], p.String())
		}
	}
	for _, id := range ids {
		if cl, ok := fleet.Clients[id]; ok {
			policy[id] = appliedClient{revision: rev, client: cl}
			continue
		}
		refused := slices.Concat(problems[""], problems[id])
		if len(refused) == 0 {
			refused = []string{fmt.Sprintf("revision %s has no clients/%s directory", protocol.ShortRevision(rev), id)}
		}
		policy[id] = appliedClient{revision: rev, refused: refused}
	}
	return policy
}

// refuse records a refused revision, for the whole fleet (client "") or one
// client, which keeps running its last good revision. The same verdict on
// the same head as the one the store holds last for that client (the
// head judged again after a restart) is shown but not recorded, audited
// or counted again. A refusal the store cannot record is returned, for
// the head to be judged again later: a verdict is never lost.
func (r *revisions) refuse(ctx context.Context, head plumbing.Hash, ref *refusal, now time.Time) error {
	rev := store.Revision{Hash: head.String(), Status: store.RevisionRefused, At: now, Problems: ref.problems, Client: ref.client, Reason: ref.reason}
	r.mu.Lock()
	last, seen := r.lastRefusal[ref.client]
	r.mu.Unlock()
	again := seen && sameRefusal(last, rev)
	if again {
		rev.At = last.At
	} else if err := r.store.RecordRevisions(ctx, []store.Revision{rev}); err != nil {
		return fmt.Errorf("could not record the refusal (%s): %w", ref.reason, err)
	}
	r.mu.Lock()
	r.refused = &protocol.Refusal{Revision: rev.Hash, Client: rev.Client, Reason: rev.Reason, Problems: rev.Problems, At: rev.At}
	r.lastRefusal[ref.client] = rev
	if ref.client == "" {
		// The branch head is refused: remember it so the same head is not
		// tried again on every poll, while the policy stays as it was.
		r.head = head
	}
	r.mu.Unlock()
	// Again too: the status posted before a restart may have been lost.
	r.commitStatus.Refused(rev.Hash, ref.client, ref.reason, ref.problems)
	if again {
		r.metrics.StillRefused(ref.client, rev.At)
		r.log.Warn("policy revision refused again, as recorded before; keeping the last good revision", "revision", rev.Hash, "client", ref.client, "reason", ref.reason, "refused_at", rev.At)
		return nil
	}
	r.metrics.Refused(ref.client, ref.reason, now)
	logRefused(r.log, "policy revision refused; keeping the last good revision", rev.Hash, ref.client, ref.reason, ref.problems)
	return nil
}

// sameRefusal reports whether b is the verdict a already recorded: the
// same head, client, reason and problems. A refusal stored before its
// reason was kept matches on the rest.
func sameRefusal(a, b store.Revision) bool {
	return a.Status == store.RevisionRefused && a.Hash == b.Hash && a.Client == b.Client &&
		(a.Reason == "" || a.Reason == b.Reason) && slices.Equal(a.Problems, b.Problems)
}
