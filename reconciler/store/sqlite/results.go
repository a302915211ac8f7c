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
)

// The statements of result writes.
var (
	resultJobQuery     = writeQuery(`SELECT endpoint, client, ring, revision, updates, state FROM jobs WHERE id = ?`)
	finishJobQuery     = writeQuery(`UPDATE jobs SET state = 'done', finished_at = ?, lease_until = NULL WHERE id = ?`)
	insertAttemptQuery = writeQuery(`INSERT INTO attempts (endpoint, update_id, job, ring, at, result, error, output)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	markInstalledQuery = writeQuery(`UPDATE updates SET installed = 1, installed_at = coalesce(installed_at, ?)
		WHERE endpoint = ? AND id = ?`)
)

// RecordResult records the outcome of a job that endpoint ran, in one
// transaction: the job becomes done, each result becomes an attempt of its
// update (with the job's ring), a succeeded update is marked installed (its
// InstalledAt is the result's time unless it already had one), and a
// job-result audit entry is appended.
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
		var jobEndpoint, client, ring, revision, st string
		var updates sql.NullString
		err := tx.queryRow(resultJobQuery, jobID).Scan(&jobEndpoint, &client, &ring, &revision, &updates, &st)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && jobEndpoint != endpoint) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		rec.Ring = ring
		if store.JobState(st) == store.JobDone {
			rec.Duplicate = true
			return nil
		}
		jobUpdates, err := jsonList[string](updates)
		if err != nil {
			return fmt.Errorf("updates: %w", err)
		}
		counts := map[protocol.Result]int{}
		for _, r := range results {
			if !slices.Contains(jobUpdates, r.Update) {
				return fmt.Errorf("result for update %q, which the job does not contain: %w", r.Update, store.ErrInvalid)
			}
			switch r.Result {
			case protocol.ResultSucceeded, protocol.ResultFailed, protocol.ResultRefused:
			default:
				return fmt.Errorf("update %q: unknown result %q: %w", r.Update, r.Result, store.ErrInvalid)
			}
			counts[r.Result]++
		}

		if _, err := tx.exec(finishJobQuery, now.UnixNano(), jobID); err != nil {
			return err
		}
		for _, r := range results {
			at := r.At
			if at.IsZero() {
				at = now
			}
			if _, err := tx.exec(insertAttemptQuery, endpoint, r.Update, jobID, ring, at.UnixNano(), string(r.Result), r.Error, r.Output); err != nil {
				return fmt.Errorf("update %q: %w", r.Update, err)
			}
			if r.Result == protocol.ResultSucceeded {
				if _, err := tx.exec(markInstalledQuery, at.UnixNano(), endpoint, r.Update); err != nil {
					return fmt.Errorf("update %q: %w", r.Update, err)
				}
			}
		}
		detail, err := json.Marshal(struct {
			Succeeded int  `json:"succeeded"`
			Failed    int  `json:"failed"`
			Refused   int  `json:"refused"`
			Expired   bool `json:"expired,omitempty"`
		}{counts[protocol.ResultSucceeded], counts[protocol.ResultFailed], counts[protocol.ResultRefused], store.JobState(st) == store.JobExpired})
		if err != nil {
			return err
		}
		return appendAudit(tx, protocol.AuditEntry{
			At: now, Kind: protocol.AuditJobResult, Client: client, Endpoint: endpoint, Revision: revision, Job: jobID, Detail: detail,
		})
	})
	if err != nil {
		return store.Recorded{}, fmt.Errorf("result of job %q from endpoint %q: %w", jobID, endpoint, err)
	}
	return rec, nil
}
