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
	// lastErr is the last failure to fetch, read or record the branch.
	lastErr string
	// refused is the most recent refused head and why.
	refused *protocol.Refusal
}

// appliedClient is one client's policy at the revision it runs.
type appliedClient struct {
	revision string
	client   *schema.Client
}

// Policy returns the policy client runs, and false when the fleet repo has
// no such client.
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
	// running maps each client to the revision it runs.
	running map[string]string
}

func (r *revisions) view() revisionView {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := revisionView{head: r.head, lastErr: r.lastErr, running: make(map[string]string, len(r.policy))}
	if r.refused != nil {
		ref := *r.refused
		v.refused = &ref
	}
	for id, p := range r.policy {
		v.running[id] = p.revision
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

// loadFleet loads and vets the fleet repo at rev.
func (r *revisions) loadFleet(ctx context.Context, rev string) (*schema.Fleet, error) {
	return source.LoadRevision(ctx, r.loader, r.repoDir, rev)
}

// restore reloads, after a restart, the revision each client last ran, so
// a restart neither loses a client's policy nor jumps it to a head that was
// refused. Every client it restores is queued for a re-plan. When signed
// commits are required and no revision was ever applied, it refuses to go
// on without a trust anchor: nothing would vouch for the first head's
// history.
func (r *revisions) restore(ctx context.Context) error {
	revs, err := r.store.Revisions(ctx, 1)
	if err != nil {
		return fmt.Errorf("read applied revisions: %w", err)
	}
	byRev := make(map[string][]string)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cr := range revs.Clients {
		if cr.LastApplied != nil {
			r.metrics.Applied(cr.Client, cr.LastApplied.Hash, cr.LastApplied.At)
		}
		if cr.LastAttempted.Status == store.RevisionRefused {
			// After Applied, which clears the refused gauge: the newer
			// refusal stands.
			r.metrics.StillRefused(cr.Client, cr.LastAttempted.At)
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
	for rev, clients := range byRev {
		fleet, err := r.loadFleet(ctx, rev)
		if err != nil {
			return fmt.Errorf("reload applied revision %s: %w", rev, err)
		}
		for _, id := range clients {
			if cl, ok := fleet.Clients[id]; ok {
				r.policy[id] = appliedClient{revision: rev, client: cl}
				r.queue.Add(id)
			}
		}
	}
	if len(revs.Refused) > 0 {
		x := revs.Refused[0]
		r.refused = &protocol.Refusal{Revision: x.Hash, Client: x.Client, Problems: x.Problems, At: x.At}
	}
	if r.verify.RequireSigned && r.applied.IsZero() && r.verify.TrustFrom.IsZero() {
		return errors.New("--require-signed: no fleet revision has been applied yet, so nothing vouches for the history " +
			"of the first head; give --trust-from COMMIT, the last commit you trust as it is (check it by hand, e.g. " +
			"with git log --show-signature): every commit after it must be signed")
	}
	return nil
}

// refuse records a refused revision, for the whole fleet (client "") or one
// client, which keeps running its last good revision.
func (r *revisions) refuse(ctx context.Context, head plumbing.Hash, ref *refusal, now time.Time) {
	r.mu.Lock()
	r.refused = &protocol.Refusal{Revision: head.String(), Client: ref.client, Reason: ref.reason, Problems: ref.problems, At: now}
	if ref.client == "" {
		// The branch head is refused: remember it so the same head is not
		// tried again on every poll, while the policy stays as it was.
		r.head = head
	}
	r.mu.Unlock()
	rev := store.Revision{Hash: head.String(), Status: store.RevisionRefused, At: now, Problems: ref.problems, Client: ref.client}
	if err := r.store.RecordRevisions(ctx, []store.Revision{rev}); err != nil {
		r.log.Error("record refused revision", "revision", rev.Hash, "client", rev.Client, "err", err)
	}
	r.metrics.Refused(ref.client, ref.reason, now)
	r.log.Error("policy revision refused; keeping the last good revision", "revision", head.String(), "client", ref.client, "reason", ref.reason, "problems", ref.problems)
}
