package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// The statements of result writes.
const (
	// A result takes the endpoint lock of the endpoint that sends it
	// (the job's, or the result is refused), then locks the job's row: a
	// second copy of the result, recorded at the same time by another
	// replica, waits there and then finds the job done.
	lockResultEndpointQuery = `SELECT 1 FROM endpoints WHERE id = $1 FOR NO KEY UPDATE`
	lockResultJobQuery      = `SELECT endpoint, client, ring, revision, updates, state FROM jobs WHERE id = $1 FOR NO KEY UPDATE`
	finishJobQuery          = `UPDATE jobs SET state = 'done', finished_at = $1, lease_until = NULL WHERE id = $2`
	insertAttemptQuery      = `INSERT INTO attempts (endpoint, update_id, job, ring, at, result, error, output)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	markInstalledQuery = `UPDATE updates SET installed = true, installed_at = coalesce(installed_at, $1)
		WHERE endpoint = $2 AND id = $3`
)

// RecordResult records the outcome of a job that endpoint ran, in one
// transaction: the job becomes done, each result becomes an attempt of its
// update (with the job's ring), a succeeded update is marked installed (its
// InstalledAt is the result's time unless it already had one), and a
// job-result audit entry is appended.
//
// Recording is idempotent by job id: a second copy of a result (the agent's
// outbox retrying after a lost answer, perhaps to another replica) changes
// nothing and is answered as a duplicate. Either way the answer carries the
// job's ring. A job of another endpoint is store.ErrNotFound, as if it did
// not exist. A result for an expired job is recorded all the same: the
// agent may have started it in time, and what happened on the endpoint is
// what counts.
func (db *DB) RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error) {
	var rec store.Recorded
	err := db.update(ctx, func(t *wtx) error {
		rec = store.Recorded{}
		job, err := readResultJob(t, jobID, endpoint)
		if err != nil {
			return err
		}
		rec.Ring = job.ring
		if job.state == store.JobDone {
			rec.Duplicate = true
			return nil
		}
		counts, err := countResults(job.updates, results)
		if err != nil {
			return err
		}
		if err := recordAttempts(t, jobID, endpoint, job.ring, results, now); err != nil {
			return err
		}
		return auditResult(t, jobID, endpoint, job, counts, now)
	})
	if err != nil {
		return store.Recorded{}, fmt.Errorf("result of job %q from endpoint %q: %w", jobID, endpoint, err)
	}
	return rec, nil
}

// resultJob is what RecordResult reads of the job a result is for.
type resultJob struct {
	client, ring, revision string
	state                  store.JobState
	updates                []string
}

// readResultJob locks endpoint and job jobID and reads the job. A job that
// does not exist, or is another endpoint's, is store.ErrNotFound.
func readResultJob(t *wtx, jobID, endpoint string) (resultJob, error) {
	var j resultJob
	var jobEndpoint, st string
	found := false
	b := &pgx.Batch{}
	b.Queue(lockResultEndpointQuery, endpoint)
	b.Queue(lockResultJobQuery, jobID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&jobEndpoint, &j.client, &j.ring, &j.revision, &j.updates, &st)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err := t.send(b); err != nil {
		return resultJob{}, err
	}
	if !found || jobEndpoint != endpoint {
		return resultJob{}, store.ErrNotFound
	}
	j.state = store.JobState(st)
	return j, nil
}

// countResults checks every result against the job's update list (it
// must name one of the job's updates and have a known outcome) and counts
// the results by outcome. RecordResult runs it before writing anything,
// so a result set with one bad entry stores none of them.
func countResults(jobUpdates []string, results []store.UpdateResult) (map[protocol.Result]int, error) {
	counts := map[protocol.Result]int{}
	for _, r := range results {
		if !slices.Contains(jobUpdates, r.Update) {
			return nil, fmt.Errorf("result for update %q, which the job does not contain: %w", r.Update, store.ErrInvalid)
		}
		switch r.Result {
		case protocol.ResultSucceeded, protocol.ResultFailed, protocol.ResultRefused:
		default:
			return nil, fmt.Errorf("update %q: unknown result %q: %w", r.Update, r.Result, store.ErrInvalid)
		}
		counts[r.Result]++
	}
	return counts, nil
}

// recordAttempts marks job jobID done and stores each result as an attempt
// of its update in ring, at the result's time (now when it has none); a
// succeeded update is marked installed, keeping an install time it already
// had. All in one round trip.
func recordAttempts(t *wtx, jobID, endpoint, ring string, results []store.UpdateResult, now time.Time) error {
	b := &pgx.Batch{}
	b.Queue(finishJobQuery, now.UnixNano(), jobID)
	for _, r := range results {
		at := r.At
		if at.IsZero() {
			at = now
		}
		b.Queue(insertAttemptQuery, endpoint, r.Update, jobID, ring, at.UnixNano(), string(r.Result), r.Error, r.Output)
		if r.Result == protocol.ResultSucceeded {
			b.Queue(markInstalledQuery, at.UnixNano(), endpoint, r.Update)
		}
	}
	return t.send(b)
}

// auditResult appends the job-result audit entry of job: how many updates
// succeeded, failed and were refused, and whether the job had expired
// before its result came.
func auditResult(t *wtx, jobID, endpoint string, job resultJob, counts map[protocol.Result]int, now time.Time) error {
	detail, err := json.Marshal(struct {
		Succeeded int  `json:"succeeded"`
		Failed    int  `json:"failed"`
		Refused   int  `json:"refused"`
		Expired   bool `json:"expired,omitempty"`
	}{counts[protocol.ResultSucceeded], counts[protocol.ResultFailed], counts[protocol.ResultRefused], job.state == store.JobExpired})
	if err != nil {
		return err
	}
	t.appendAudit(protocol.AuditEntry{
		At: now, Kind: protocol.AuditJobResult, Client: job.client, Endpoint: endpoint, Revision: job.revision, Job: jobID, Detail: detail,
	})
	return nil
}
