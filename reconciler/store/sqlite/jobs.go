package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// The statements of job writes.
var (
	jobKeyQuery    = writeQuery(`SELECT 1 FROM jobs WHERE idempotency_key = ?`)
	jobSeqQuery    = writeQuery(`SELECT client, job_seq, revoked_at IS NOT NULL FROM endpoints WHERE id = ?`)
	setJobSeqQuery = writeQuery(`UPDATE endpoints SET job_seq = ? WHERE id = ?`)
	insertJobQuery = writeQuery(`INSERT INTO jobs (id, seq, endpoint, client, ring, updates, not_after, reboot,
		reboot_deadline, revision, idempotency_key, payload, signature, state, created_at, action)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	leaseJobQuery = writeQuery(`UPDATE jobs SET state = 'leased', lease_until = ?
		WHERE id = ? AND state IN ('open', 'leased')`)
	jobStateQuery   = writeQuery(`SELECT state FROM jobs WHERE id = ?`)
	expireJobsQuery = writeQuery(`UPDATE jobs SET state = 'expired', finished_at = ?
		WHERE state IN ('open', 'leased') AND not_after <= ?
		RETURNING id, endpoint, client, revision`)
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
// its endpoint has already seen (another writer numbered a job, or an
// agent reported a higher number, since the controller read LastJobSeqs)
// is store.ErrConflict: the controller plans again.
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

	var created []store.Job
	err := db.update(ctx, func(tx *wtx) error {
		for _, j := range jobs {
			c, ok, err := createJob(tx, client, j, now)
			if err != nil {
				return fmt.Errorf("job for endpoint %q (key %q): %w", j.Endpoint, j.IdempotencyKey, err)
			}
			if ok {
				created = append(created, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create jobs of client %q: %w", client, err)
	}
	return created, nil
}

// createJob stores one job inside CreateJobs' transaction; ok is false when
// its idempotency key is already stored.
func createJob(tx *wtx, client string, j store.Job, now time.Time) (store.Job, bool, error) {
	var exists int
	err := tx.queryRow(jobKeyQuery, j.IdempotencyKey).Scan(&exists)
	if err == nil {
		return store.Job{}, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, false, err
	}

	var epClient string
	var seq int64
	var revoked bool
	err = tx.queryRow(jobSeqQuery, j.Endpoint).Scan(&epClient, &seq, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, false, fmt.Errorf("endpoint not enrolled: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Job{}, false, err
	}
	if epClient != client {
		return store.Job{}, false, fmt.Errorf("endpoint belongs to client %q: %w", epClient, store.ErrConflict)
	}
	if revoked {
		// Planned from a snapshot read before the endpoint was revoked;
		// the next plan leaves it out.
		return store.Job{}, false, nil
	}
	if j.Seq <= seq {
		return store.Job{}, false, fmt.Errorf("job number %d is not above %d, the endpoint's highest: %w", j.Seq, seq, store.ErrConflict)
	}
	if _, err := tx.exec(setJobSeqQuery, j.Seq, j.Endpoint); err != nil {
		return store.Job{}, false, err
	}

	j.Client = client
	j.Updates = slices.Clone(j.Updates)
	j.State = store.JobOpen
	j.LeaseUntil = time.Time{}
	j.CreatedAt = now
	updates, err := json.Marshal(j.Updates)
	if err != nil {
		return store.Job{}, false, err
	}
	if _, err := tx.exec(insertJobQuery, j.ID, j.Seq, j.Endpoint, j.Client, j.Ring, string(updates), j.NotAfter.UnixNano(), string(j.Reboot),
		j.RebootDeadline, j.Revision, j.IdempotencyKey, j.Payload, j.Signature, string(j.State), now.UnixNano(), j.Action); err != nil {
		return store.Job{}, false, err
	}
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
		return store.Job{}, false, err
	}
	if err := appendAudit(tx, protocol.AuditEntry{
		At: now, Kind: protocol.AuditJobCreated, Client: client, Endpoint: j.Endpoint, Revision: j.Revision, Job: j.ID, Detail: detail,
	}); err != nil {
		return store.Job{}, false, err
	}
	return j, true, nil
}

// lastJobSeqsQuery is LastJobSeqs' query.
var lastJobSeqsQuery = readQuery(`SELECT id, job_seq FROM endpoints WHERE client = ?`)

// LastJobSeqs returns, for each enrolled endpoint of client, the highest
// job sequence number it has seen (0 for none): the controller numbers the
// endpoint's next job above it.
func (db *DB) LastJobSeqs(ctx context.Context, client string) (map[string]int64, error) {
	rows, err := db.stmts.lookup(db.read, lastJobSeqsQuery).QueryContext(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("job numbers of client %q: %w", client, err)
	}
	defer rows.Close()
	seqs := make(map[string]int64)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, fmt.Errorf("job numbers of client %q: %w", client, err)
		}
		seqs[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("job numbers of client %q: %w", client, err)
	}
	return seqs, nil
}

// jobColumns are the columns scanJob reads.
const jobColumns = `id, seq, endpoint, client, ring, updates, not_after, reboot, reboot_deadline, revision,
	idempotency_key, payload, signature, state, lease_until, created_at`

func scanJob(rows *sql.Rows) (store.Job, error) {
	var j store.Job
	var updates sql.NullString
	var notAfter, leaseUntil, created sql.NullInt64
	var reboot, st string
	if err := rows.Scan(&j.ID, &j.Seq, &j.Endpoint, &j.Client, &j.Ring, &updates, &notAfter, &reboot, &j.RebootDeadline,
		&j.Revision, &j.IdempotencyKey, &j.Payload, &j.Signature, &st, &leaseUntil, &created); err != nil {
		return store.Job{}, err
	}
	var err error
	if j.Updates, err = jsonList[string](updates); err != nil {
		return store.Job{}, fmt.Errorf("job %q: updates: %w", j.ID, err)
	}
	j.Reboot = schema.RebootPolicy(reboot)
	j.State = store.JobState(st)
	j.NotAfter = timeOf(notAfter)
	j.LeaseUntil = timeOf(leaseUntil)
	j.CreatedAt = timeOf(created)
	return j, nil
}

// dueJobsQuery is DueJobs' query, run on every long-poll.
var dueJobsQuery = readQuery(`SELECT ` + jobColumns + ` FROM jobs
	WHERE endpoint = ? AND state IN ('open', 'leased') AND not_after > ? AND (state = 'open' OR lease_until <= ?)
	AND NOT EXISTS (SELECT 1 FROM jobs AS older WHERE older.endpoint = jobs.endpoint AND older.seq < jobs.seq
		AND older.state = 'leased' AND older.lease_until > ? AND older.not_after > ?)
	ORDER BY seq`)

// DueJobs returns the jobs of an endpoint its agent should run now, in
// sequence order: open jobs, and leased jobs whose lease ended without a
// result (the agent crashed or lost the job; it is offered again), in both
// cases only while their not-after time is after now. No job is offered
// while an older one of the endpoint is still leased: the agent refuses a
// job whose sequence number is below one it has seen, so a lost job
// offered again after a newer one would be refused for good.
func (db *DB) DueJobs(ctx context.Context, endpoint string, now time.Time) ([]store.Job, error) {
	n := now.UnixNano()
	rows, err := db.stmts.lookup(db.read, dueJobsQuery).QueryContext(ctx, endpoint, n, n, n, n)
	if err != nil {
		return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, err)
	}
	defer rows.Close()
	var jobs []store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, err)
	}
	return jobs, nil
}

// LeaseJob marks an open or leased job as handed to its agent until the
// given time; DueJobs offers it again after that. A finished job is
// store.ErrConflict, an unknown one store.ErrNotFound.
func (db *DB) LeaseJob(ctx context.Context, id string, until time.Time) error {
	err := db.update(ctx, func(tx *wtx) error {
		res, err := tx.exec(leaseJobQuery, until.UnixNano(), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var st string
		err = tx.queryRow(jobStateQuery, id).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
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

var raiseJobSeqQuery = writeQuery(`UPDATE endpoints SET job_seq = max(job_seq, ?) WHERE id = ?`)

// RaiseJobSeq makes the endpoint's next job numbered above seq, the
// highest its agent has seen (it is ahead after a restore from an older
// backup); a lower seq changes nothing. An unknown endpoint is
// store.ErrNotFound.
func (db *DB) RaiseJobSeq(ctx context.Context, endpoint string, seq int64) error {
	err := db.update(ctx, func(tx *wtx) error {
		res, err := tx.exec(raiseJobSeqQuery, seq, endpoint)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return store.ErrNotFound
	})
	if err != nil {
		return fmt.Errorf("raise job numbers of endpoint %q: %w", endpoint, err)
	}
	return nil
}

// ExpireJobs marks every open or leased job whose not-after time is not
// after now as expired, with a job-expired audit entry each, and returns how
// many it expired.
func (db *DB) ExpireJobs(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *wtx) error {
		rows, err := tx.query(expireJobsQuery, now.UnixNano(), now.UnixNano())
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
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, e := range expired {
			if err := appendAudit(tx, e); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire jobs: %w", err)
	}
	return n, nil
}
