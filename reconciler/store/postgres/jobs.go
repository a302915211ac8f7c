package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// The statements of job writes.
const (
	// lockEndpointsQuery takes the endpoint lock of every endpoint of a
	// plan, in id order, so two writers locking overlapping sets never
	// wait for each other in a cycle.
	lockEndpointsQuery = `SELECT id, client, job_seq, revoked_at IS NOT NULL FROM endpoints WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
	jobKeysQuery       = `SELECT idempotency_key FROM jobs WHERE idempotency_key = ANY($1)`
	setJobSeqQuery     = `UPDATE endpoints SET job_seq = $1 WHERE id = $2`
	// insertJobQuery skips a job whose key another writer stored after
	// this one looked (for another endpoint, so under another lock): the
	// caller then runs the transaction again and finds it.
	insertJobQuery = `INSERT INTO jobs (id, seq, endpoint, client, ring, updates, not_after, reboot,
		reboot_deadline, revision, idempotency_key, payload, signature, state, created_at, fence, action)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT (idempotency_key) DO NOTHING`
)

// CreateJobs stores one client's new jobs, from one re-plan, in a single
// transaction: either all of them are queued or none is.
//
// The jobs come numbered and signed (the controller signs before it
// stores, so no signing key is ever needed inside a transaction): each has
// an ID, a Seq above every job number its endpoint has seen (see
// LastJobSeqs), a Payload and a Signature. A job whose idempotency key is
// already stored (from an earlier plan, or earlier in jobs) is skipped;
// created lists only the jobs stored now, with State open and CreatedAt
// now. Each created job gets a job-created audit entry in the same
// transaction.
//
// Every job must be for an enrolled endpoint of client (store.ErrNotFound
// for an unknown endpoint, store.ErrConflict for another client's); a job
// with an empty Client gets client. A job for a revoked endpoint (planned
// before it was revoked) is skipped. A job numbered at or below a number
// its endpoint has already seen (another writer, perhaps another replica,
// numbered a job, or an agent reported a higher number, since the
// controller read LastJobSeqs) is store.ErrConflict: the controller plans
// again.
func (db *DB) CreateJobs(ctx context.Context, client string, jobs []store.Job, now time.Time) ([]store.Job, error) {
	for i, j := range jobs {
		switch {
		case j.Endpoint == "":
			return nil, fmt.Errorf("create jobs of client %q: job %d: endpoint is required: %w", client, i, store.ErrInvalid)
		case j.IdempotencyKey == "":
			return nil, fmt.Errorf("create jobs of client %q: job %d for endpoint %q: idempotency key is required: %w", client, i, j.Endpoint, store.ErrInvalid)
		case len(j.Updates) == 0:
			return nil, fmt.Errorf("create jobs of client %q: job %d for endpoint %q: no updates: %w", client, i, j.Endpoint, store.ErrInvalid)
		case !storable(j.NotAfter):
			return nil, fmt.Errorf("create jobs of client %q: job %d for endpoint %q: not-after time %s is missing or out of range: %w", client, i, j.Endpoint, j.NotAfter.Format(timeLayout), store.ErrInvalid)
		case j.Client != "" && j.Client != client:
			return nil, fmt.Errorf("create jobs of client %q: job %d for endpoint %q names client %q: %w", client, i, j.Endpoint, j.Client, store.ErrInvalid)
		case j.ID == "" || j.Seq <= 0 || len(j.Payload) == 0 || len(j.Signature) == 0:
			return nil, fmt.Errorf("create jobs of client %q: job %d for endpoint %q is not numbered and signed: %w", client, i, j.Endpoint, store.ErrInvalid)
		}
	}
	if len(jobs) == 0 {
		return nil, nil
	}

	var created []store.Job
	err := db.update(ctx, func(t *wtx) error {
		var err error
		fence, err := db.checkFence(t)
		if err != nil {
			return err
		}
		created, err = createJobs(t, client, jobs, now, fence)
		if err != nil || len(created) == 0 {
			return err
		}
		eps := make([]string, len(created))
		for i, j := range created {
			eps[i] = j.Endpoint
		}
		return t.notify(NotifyJobs, eps...)
	})
	if err != nil {
		return nil, fmt.Errorf("create jobs of client %q: %w", client, err)
	}
	return created, nil
}

// jobEndpoint is what CreateJobs reads of a job's endpoint.
type jobEndpoint struct {
	client  string
	seq     int64
	revoked bool
	// raised is set once a job of this transaction numbered it.
	raised bool
}

// createJobs is CreateJobs inside t, in three round trips: lock the
// endpoints and read the keys already stored, check each job in memory in
// plan order, write the jobs and the new job numbers.
func createJobs(t *wtx, client string, jobs []store.Job, now time.Time, fence int64) ([]store.Job, error) {
	fenceArg := pgtype.Int8{Int64: fence, Valid: fence != 0}
	var ids, keys []string
	for _, j := range jobs {
		ids = append(ids, j.Endpoint)
		keys = append(keys, j.IdempotencyKey)
	}
	sort.Strings(ids)
	ids = slices.Compact(ids)

	eps := map[string]*jobEndpoint{}
	stored := map[string]bool{}
	b := &pgx.Batch{}
	b.Queue(lockEndpointsQuery, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			e := &jobEndpoint{}
			if err := rows.Scan(&id, &e.client, &e.seq, &e.revoked); err != nil {
				return err
			}
			eps[id] = e
		}
		return rows.Err()
	})
	// Read after the locks are held: a job stored by a writer that held
	// one of them before is seen.
	b.Queue(jobKeysQuery, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			stored[k] = true
		}
		return rows.Err()
	})
	if err := t.send(b); err != nil {
		return nil, err
	}

	var created []store.Job
	b = &pgx.Batch{}
	for _, j := range jobs {
		if stored[j.IdempotencyKey] {
			continue
		}
		fail := func(err error) ([]store.Job, error) {
			return nil, fmt.Errorf("job for endpoint %q (key %q): %w", j.Endpoint, j.IdempotencyKey, err)
		}
		e := eps[j.Endpoint]
		switch {
		case e == nil:
			return fail(fmt.Errorf("endpoint not enrolled: %w", store.ErrNotFound))
		case e.client != client:
			return fail(fmt.Errorf("endpoint belongs to client %q: %w", e.client, store.ErrConflict))
		case e.revoked:
			// Planned from a snapshot read before the endpoint was
			// revoked; the next plan leaves it out.
			continue
		case j.Seq <= e.seq:
			return fail(fmt.Errorf("job number %d is not above %d, the endpoint's highest: %w", j.Seq, e.seq, store.ErrConflict))
		}
		e.seq, e.raised = j.Seq, true
		stored[j.IdempotencyKey] = true

		j.Client = client
		j.Updates = slices.Clone(j.Updates)
		j.State = store.JobOpen
		j.LeaseUntil = time.Time{}
		j.CreatedAt = now
		b.Queue(insertJobQuery, j.ID, j.Seq, j.Endpoint, j.Client, j.Ring, j.Updates, j.NotAfter.UnixNano(), string(j.Reboot),
			j.RebootDeadline, j.Revision, j.IdempotencyKey, j.Payload, j.Signature, string(j.State), now.UnixNano(), fenceArg, j.Action,
		).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() == 0 {
				return errRetry
			}
			return nil
		})
		detail, err := json.Marshal(struct {
			Seq      int64     `json:"seq"`
			Ring     string    `json:"ring"`
			Updates  []string  `json:"updates"`
			NotAfter time.Time `json:"notAfter"`
			Key      string    `json:"idempotencyKey"`
			// Action is "rollback" for a job that removes its updates.
			Action string `json:"action,omitempty"`
		}{j.Seq, j.Ring, j.Updates, j.NotAfter.UTC(), j.IdempotencyKey, j.Action})
		if err != nil {
			return fail(err)
		}
		t.appendAudit(protocol.AuditEntry{
			At: now, Kind: protocol.AuditJobCreated, Client: client, Endpoint: j.Endpoint, Revision: j.Revision, Job: j.ID, Detail: detail,
		})
		created = append(created, j)
	}
	for _, id := range ids {
		if e := eps[id]; e != nil && e.raised {
			b.Queue(setJobSeqQuery, e.seq, id)
		}
	}
	if b.Len() == 0 {
		return created, nil
	}
	return created, t.send(b)
}

// LastJobSeqs returns, for each enrolled endpoint of client, the highest
// job sequence number it has seen (0 for none): the controller numbers the
// endpoint's next job above it.
func (db *DB) LastJobSeqs(ctx context.Context, client string) (map[string]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, job_seq FROM endpoints WHERE client = $1`, client)
	if err != nil {
		return nil, fmt.Errorf("job numbers of client %q: %w", client, classify(err))
	}
	defer rows.Close()
	seqs := make(map[string]int64)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, fmt.Errorf("job numbers of client %q: %w", client, classify(err))
		}
		seqs[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("job numbers of client %q: %w", client, classify(err))
	}
	return seqs, nil
}

// jobColumns are the columns scanJob reads.
const jobColumns = `id, seq, endpoint, client, ring, updates, not_after, reboot, reboot_deadline, revision,
	idempotency_key, payload, signature, state, lease_until, created_at`

func scanJob(rows pgx.Rows) (store.Job, error) {
	var j store.Job
	var notAfter, leaseUntil, created pgtype.Int8
	var reboot, st string
	if err := rows.Scan(&j.ID, &j.Seq, &j.Endpoint, &j.Client, &j.Ring, &j.Updates, &notAfter, &reboot, &j.RebootDeadline,
		&j.Revision, &j.IdempotencyKey, &j.Payload, &j.Signature, &st, &leaseUntil, &created); err != nil {
		return store.Job{}, err
	}
	j.Reboot = schema.RebootPolicy(reboot)
	j.State = store.JobState(st)
	j.NotAfter = timeOf(notAfter)
	j.LeaseUntil = timeOf(leaseUntil)
	j.CreatedAt = timeOf(created)
	return j, nil
}

// dueJobsQuery is DueJobs' query, run on every long-poll.
const dueJobsQuery = `SELECT ` + jobColumns + ` FROM jobs
	WHERE endpoint = $1 AND state IN ('open', 'leased') AND not_after > $2 AND (state = 'open' OR lease_until <= $2)
	AND NOT EXISTS (SELECT 1 FROM jobs AS older WHERE older.endpoint = jobs.endpoint AND older.seq < jobs.seq
		AND older.state = 'leased' AND older.lease_until > $2 AND older.not_after > $2)
	ORDER BY seq`

// DueJobs returns the jobs of an endpoint its agent should run now, in
// sequence order: open jobs, and leased jobs whose lease ended without a
// result (the agent crashed or lost the job; it is offered again), in both
// cases only while their not-after time is after now. No job is offered
// while an older one of the endpoint is still leased: the agent refuses a
// job whose sequence number is below one it has seen, so a lost job
// offered again after a newer one would be refused for good.
func (db *DB) DueJobs(ctx context.Context, endpoint string, now time.Time) ([]store.Job, error) {
	rows, err := db.pool.Query(ctx, dueJobsQuery, endpoint, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, classify(err))
	}
	defer rows.Close()
	var jobs []store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, classify(err))
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, classify(err))
	}
	return jobs, nil
}

// LeaseJob marks an open or leased job as handed to its agent until the
// given time; DueJobs offers it again after that. A finished job is
// store.ErrConflict, an unknown one store.ErrNotFound.
func (db *DB) LeaseJob(ctx context.Context, id string, until time.Time) error {
	err := db.update(ctx, func(t *wtx) error {
		// The update waits for a result being recorded for the job, and
		// then finds it done.
		tag, err := t.exec(`UPDATE jobs SET state = 'leased', lease_until = $1 WHERE id = $2 AND state IN ('open', 'leased')`,
			until.UnixNano(), id)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var st string
		err = t.queryRow(`SELECT state FROM jobs WHERE id = $1`, id).Scan(&st)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("job is %s: %w", st, store.ErrConflict)
	})
	if err != nil {
		return fmt.Errorf("lease job %q: %w", id, err)
	}
	return nil
}

// RaiseJobSeq makes the endpoint's next job numbered above seq, the
// highest its agent has seen (it is ahead after a restore from an older
// backup); a lower seq changes nothing. An unknown endpoint is
// store.ErrNotFound.
func (db *DB) RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error {
	err := db.update(ctx, func(t *wtx) error {
		tag, err := t.exec(`UPDATE endpoints SET job_seq = greatest(job_seq, $1) WHERE id = $2`, seq, endpoint)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		return store.ErrNotFound
	})
	if err != nil {
		return fmt.Errorf("raise job numbers of endpoint %q: %w", endpoint, err)
	}
	return nil
}

// expireJobsQuery locks the jobs to expire in id order (so two replicas
// expiring at once never deadlock; the second finds the jobs expired once
// the first commits) and expires them. A job whose result is being
// recorded is waited for and then left alone: it is done.
const expireJobsQuery = `WITH due AS (
		SELECT id FROM jobs WHERE state IN ('open', 'leased') AND not_after <= $1 ORDER BY id FOR NO KEY UPDATE
	)
	UPDATE jobs SET state = 'expired', finished_at = $1 FROM due WHERE jobs.id = due.id
	RETURNING jobs.id, jobs.endpoint, jobs.client, jobs.revision`

// ExpireJobs marks every open or leased job whose not-after time is not
// after now as expired, with a job-expired audit entry each (in job id
// order), and returns how many it expired.
func (db *DB) ExpireJobs(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := db.update(ctx, func(t *wtx) error {
		if _, err := db.checkFence(t); err != nil {
			return err
		}
		rows, err := t.query(expireJobsQuery, now.UnixNano())
		if err != nil {
			return err
		}
		var expired []protocol.AuditEntry
		for rows.Next() {
			e := protocol.AuditEntry{At: now, Kind: protocol.AuditJobExpired}
			if err := rows.Scan(&e.Job, &e.Endpoint, &e.Client, &e.Revision); err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		sort.Slice(expired, func(i, j int) bool { return expired[i].Job < expired[j].Job })
		for _, e := range expired {
			t.appendAudit(e)
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire jobs: %w", err)
	}
	return n, nil
}
