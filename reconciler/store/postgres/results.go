package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// The statements of result writes.
const (
	// A result takes the endpoint lock of the endpoint that sends it
	// (the job's, or the result is refused), then locks the job's row: a
	// second copy of the result, recorded at the same time by another
	// replica, waits there and then finds the job done. The endpoint's
	// row gives the stored inventory report an unknown result is
	// verified by.
	lockResultEndpointQuery = `SELECT last_seen, report_seq FROM endpoints WHERE id = $1 FOR NO KEY UPDATE`
	lockResultJobQuery      = `SELECT endpoint, client, ring, revision, updates, state, action FROM jobs WHERE id = $1 FOR NO KEY UPDATE`
	finishJobQuery          = `UPDATE jobs SET state = 'done', finished_at = $1, lease_until = NULL WHERE id = $2`
	insertAttemptQuery      = `INSERT INTO attempts (endpoint, update_id, job, ring, at, result, error, output, action)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// A rollback that succeeded took the update away.
	markRemovedQuery   = `UPDATE updates SET installed = false, installed_at = NULL WHERE endpoint = $1 AND id = $2`
	markInstalledQuery = `UPDATE updates SET installed = true, installed_at = coalesce(installed_at, $1)
		WHERE endpoint = $2 AND id = $3`
	reportedInstalledQuery = `SELECT id, installed FROM updates WHERE endpoint = $1 AND id = ANY($2)`
)

// RecordResult records the outcome of a job that endpoint ran, in one
// transaction: the job becomes done, each result becomes an attempt of its
// update (with the job's ring), a succeeded update is marked installed (its
// InstalledAt is the result's time unless it already had one), and a
// job-result audit entry is appended.
//
// An unknown result (the agent stopped while the job was installing) is
// dated by the controller, not by the agent: at the time of the stored
// inventory report when that report is the one the agent sent after the
// interruption, or a later one (UpdateResult.InventorySeq), and at now
// otherwise. The planner reads an inventory at or after that date as the
// one that shows what the interrupted job left installed. The attempt's
// error says what that inventory showed: the update installed, or still
// missing.
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
		job, inv, err := readResultJob(t, jobID, endpoint)
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
		v, err := recordAttempts(t, jobID, endpoint, job.ring, job.action, results, inv, now)
		if err != nil {
			return err
		}
		return auditResult(t, jobID, endpoint, job, counts, v, now)
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
	// action is the job's action (protocol.ActionRollback or "").
	action string
}

// storedReport is the endpoint's stored inventory report: its time and the
// agent's number for it; ok is false when it has none.
type storedReport struct {
	at  time.Time
	seq int64
	ok  bool
}

// readResultJob locks endpoint and job jobID and reads the job and the
// endpoint's stored report. A job that does not exist, or is another
// endpoint's, is store.ErrNotFound.
func readResultJob(t *wtx, jobID, endpoint string) (resultJob, storedReport, error) {
	var (
		j           resultJob
		inv         storedReport
		lastSeen    pgtype.Int8
		jobEndpoint string
		st          string
		found       bool
	)
	b := &pgx.Batch{}
	b.Queue(lockResultEndpointQuery, endpoint).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&lastSeen, &inv.seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	b.Queue(lockResultJobQuery, jobID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&jobEndpoint, &j.client, &j.ring, &j.revision, &j.updates, &st, &j.action)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err := t.send(b); err != nil {
		return resultJob{}, storedReport{}, err
	}
	if !found || jobEndpoint != endpoint {
		return resultJob{}, storedReport{}, store.ErrNotFound
	}
	j.state = store.JobState(st)
	inv.at, inv.ok = timeOf(lastSeen), lastSeen.Valid
	return j, inv, nil
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
		case protocol.ResultSucceeded, protocol.ResultFailed, protocol.ResultRefused, protocol.ResultUnknown,
			protocol.ResultDeferredByGuard, protocol.ResultHookFailed:
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
// had. Unknown results are dated and described by interrupted. It returns
// what the stored inventory inv said of the unknown results. The writes go
// in one round trip, after one more for the inventory when unknown results
// need it.
func recordAttempts(t *wtx, jobID, endpoint, ring, action string, results []store.UpdateResult, inv storedReport, now time.Time) (store.Verified, error) {
	var v store.Verified
	installed, err := reportedInstalled(t, endpoint, results, inv)
	if err != nil {
		return v, err
	}
	b := &pgx.Batch{}
	b.Queue(finishJobQuery, now.UnixNano(), jobID)
	for _, r := range results {
		at, msg := r.At, r.Error
		if at.IsZero() {
			at = now
		}
		if r.Result == protocol.ResultUnknown {
			at, msg = interrupted(r, inv, installed, now, &v)
		}
		b.Queue(insertAttemptQuery, endpoint, r.Update, jobID, ring, at.UnixNano(), string(r.Result), msg, r.Output, action)
		if r.Result == protocol.ResultSucceeded && action == protocol.ActionRollback {
			b.Queue(markRemovedQuery, endpoint, r.Update)
		} else if r.Result == protocol.ResultSucceeded {
			b.Queue(markInstalledQuery, at.UnixNano(), endpoint, r.Update)
		}
	}
	return v, t.send(b)
}

// reportedInstalled reads, for the unknown results the stored inventory
// verifies (see interrupted), whether that inventory lists each update
// installed; an update it no longer lists is absent from the map.
func reportedInstalled(t *wtx, endpoint string, results []store.UpdateResult, inv storedReport) (map[string]bool, error) {
	var ids []string
	for _, r := range results {
		if r.Result == protocol.ResultUnknown && verifies(inv, r) {
			ids = append(ids, r.Update)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := t.query(reportedInstalledQuery, endpoint, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	installed := map[string]bool{}
	for rows.Next() {
		var id string
		var ok bool
		if err := rows.Scan(&id, &ok); err != nil {
			return nil, err
		}
		installed[id] = ok
	}
	return installed, rows.Err()
}

// verifies says whether the stored inventory inv shows what the
// interruption that r reports left: it is the report the agent sent after
// the interruption, or a later one.
func verifies(inv storedReport, r store.UpdateResult) bool {
	return inv.ok && r.InventorySeq > 0 && inv.seq >= r.InventorySeq
}

// interrupted dates unknown result r and says in its error what the
// stored inventory shows of it (installed: the inventory's word on each
// update it lists), counting it in v (see store.Verified).
func interrupted(r store.UpdateResult, inv storedReport, installed map[string]bool, now time.Time, v *store.Verified) (time.Time, string) {
	is, listed := installed[r.Update]
	return v.Interrupted(r, verifies(inv, r), inv.at, listed, is, now)
}

// auditResult appends the job-result audit entry of job (see
// store.JobResultDetail).
func auditResult(t *wtx, jobID, endpoint string, job resultJob, counts map[protocol.Result]int, v store.Verified, now time.Time) error {
	detail, err := store.JobResultDetail(counts, job.state == store.JobExpired, v)
	if err != nil {
		return err
	}
	t.appendAudit(protocol.AuditEntry{
		At: now, Kind: protocol.AuditJobResult, Client: job.client, Endpoint: endpoint, Revision: job.revision, Job: jobID, Detail: detail,
	})
	return nil
}
