package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// The statements of result writes.
var (
	resultJobQuery     = writeQuery(`SELECT endpoint, client, ring, revision, updates, state, action FROM jobs WHERE id = ?`)
	finishJobQuery     = writeQuery(`UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL WHERE id = ?`)
	insertAttemptQuery = writeQuery(`INSERT INTO attempts (endpoint, update_id, job, ring, at, result, error, output, action)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	// A rollback that succeeded took the update away.
	markRemovedQuery   = writeQuery(`UPDATE updates SET installed = 0, installed_at = NULL WHERE endpoint = ? AND id = ?`)
	markInstalledQuery = writeQuery(`UPDATE updates SET installed = 1, installed_at = coalesce(installed_at, ?)
		WHERE endpoint = ? AND id = ?`)
	reportedInstalledQuery = writeQuery(`SELECT installed FROM updates WHERE endpoint = ? AND id = ?`)
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
// outbox retrying after a lost answer) changes nothing and is answered as a
// duplicate. Either way the answer carries the job's ring.
// A job of another endpoint is store.ErrNotFound, as if it did not exist. A
// result for an expired job is recorded all the same: the agent may have
// started it in time, and what happened on the endpoint is what counts.
func (db *DB) RecordResult(ctx context.Context, jobID, endpoint string, results []store.UpdateResult, now time.Time) (store.Recorded, error) {
	var rec store.Recorded
	err := db.update(ctx, func(tx *wtx) error {
		rec = store.Recorded{}
		job, err := readResultJob(tx, jobID, endpoint)
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
		v, err := recordAttempts(tx, jobID, endpoint, job.ring, job.action, results, now)
		if err != nil {
			return err
		}
		return auditResult(tx, jobID, endpoint, job, counts, v, now)
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
	// action is the job's action (protocol.ActionRollback or "").
	action string
	// updates is the job's update list as stored; it is decoded only for
	// a result that is not a duplicate.
	updates sql.NullString
}

// readResultJob reads job jobID for a result from endpoint. A job that does
// not exist, or is another endpoint's, is store.ErrNotFound.
func readResultJob(tx *wtx, jobID, endpoint string) (resultJob, error) {
	var j resultJob
	var jobEndpoint, st string
	err := tx.queryRow(resultJobQuery, jobID).Scan(&jobEndpoint, &j.client, &j.ring, &j.revision, &j.updates, &st, &j.action)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && jobEndpoint != endpoint) {
		return resultJob{}, store.ErrNotFound
	}
	if err != nil {
		return resultJob{}, err
	}
	j.state = store.JobState(st)
	return j, nil
}

// countResults checks every result against the job's stored update list
// (it must name one of the job's updates and have a known outcome) and
// counts the results by outcome. RecordResult runs it before writing
// anything, so a result set with one bad entry stores none of them.
func countResults(updates sql.NullString, results []store.UpdateResult) (map[protocol.Result]int, error) {
	jobUpdates, err := jsonList[string](updates)
	if err != nil {
		return nil, fmt.Errorf("updates: %w", err)
	}
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
// what the stored inventory said of the unknown results.
func recordAttempts(tx *wtx, jobID, endpoint, ring, action string, results []store.UpdateResult, now time.Time) (store.Verified, error) {
	var v store.Verified
	if _, err := tx.exec(finishJobQuery, now.UnixNano(), jobID); err != nil {
		return v, err
	}
	inv, err := inventoryOf(tx, endpoint, results)
	if err != nil {
		return v, err
	}
	for _, r := range results {
		at, msg := r.At, r.Error
		if at.IsZero() {
			at = now
		}
		if r.Result == protocol.ResultUnknown {
			if at, msg, err = interrupted(tx, endpoint, r, inv, now, &v); err != nil {
				return v, fmt.Errorf("update %q: %w", r.Update, err)
			}
		}
		if _, err := tx.exec(insertAttemptQuery, endpoint, r.Update, jobID, ring, at.UnixNano(), string(r.Result), msg, r.Output, action); err != nil {
			return v, fmt.Errorf("update %q: %w", r.Update, err)
		}
		if r.Result == protocol.ResultSucceeded && action == protocol.ActionRollback {
			if _, err := tx.exec(markRemovedQuery, endpoint, r.Update); err != nil {
				return v, fmt.Errorf("update %q: %w", r.Update, err)
			}
		} else if r.Result == protocol.ResultSucceeded {
			if _, err := tx.exec(markInstalledQuery, at.UnixNano(), endpoint, r.Update); err != nil {
				return v, fmt.Errorf("update %q: %w", r.Update, err)
			}
		}
	}
	return v, nil
}

// storedReport is the endpoint's stored inventory report: its time and the
// agent's number for it; ok is false when it has none.
type storedReport struct {
	at  time.Time
	seq int64
	ok  bool
}

// inventoryOf reads the endpoint's stored report, when results hold an
// unknown one (the only results that need it).
func inventoryOf(tx *wtx, endpoint string, results []store.UpdateResult) (storedReport, error) {
	if !slices.ContainsFunc(results, func(r store.UpdateResult) bool { return r.Result == protocol.ResultUnknown }) {
		return storedReport{}, nil
	}
	var (
		lastSeen sql.NullInt64
		rep      storedReport
		// A revoked endpoint's agent cannot send a result: the API
		// refuses its node key before this.
		revoked bool
	)
	if err := tx.queryRow(getSeenQuery, endpoint).Scan(&lastSeen, &rep.seq, &revoked); err != nil {
		return storedReport{}, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	rep.at, rep.ok = timeOf(lastSeen), lastSeen.Valid
	return rep, nil
}

// interrupted dates unknown result r and says in its error what the
// stored inventory shows of it, counting it in v (see store.Verified).
func interrupted(tx *wtx, endpoint string, r store.UpdateResult, inv storedReport, now time.Time, v *store.Verified) (time.Time, string, error) {
	if !inv.ok || r.InventorySeq <= 0 || inv.seq < r.InventorySeq {
		at, msg := v.Interrupted(r, false, time.Time{}, false, false, now)
		return at, msg, nil
	}
	var installed int64
	err := tx.queryRow(reportedInstalledQuery, endpoint, r.Update).Scan(&installed)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, "", err
	}
	at, msg := v.Interrupted(r, true, inv.at, err == nil, installed != 0, now)
	return at, msg, nil
}

// auditResult appends the job-result audit entry of job (see
// store.JobResultDetail).
func auditResult(tx *wtx, jobID, endpoint string, job resultJob, counts map[protocol.Result]int, v store.Verified, now time.Time) error {
	detail, err := store.JobResultDetail(counts, job.state == store.JobExpired, v)
	if err != nil {
		return err
	}
	return appendAudit(tx, protocol.AuditEntry{
		At: now, Kind: protocol.AuditJobResult, Client: job.client, Endpoint: endpoint, Revision: job.revision, Job: jobID, Detail: detail,
	})
}
