package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Endpoints lists the enrolled endpoints, revoked ones included, sorted by
// id; with clients, only those clients' endpoints.
func (db *DB) Endpoints(ctx context.Context, clients []string) ([]store.EndpointRecord, error) {
	q := `SELECT id, client, hostname, enrolled_at, last_seen, revoked_at, revoked_by FROM endpoints`
	var args []any
	if len(clients) > 0 {
		q += ` WHERE client = ANY($1)`
		args = append(args, clients)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", classify(err))
	}
	defer rows.Close()
	var out []store.EndpointRecord
	for rows.Next() {
		var e store.EndpointRecord
		var enrolled, seen, revoked pgtype.Int8
		if err := rows.Scan(&e.ID, &e.Client, &e.Hostname, &enrolled, &seen, &revoked, &e.RevokedBy); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", classify(err))
		}
		e.EnrolledAt, e.LastSeen, e.RevokedAt = timeOf(enrolled), timeOf(seen), timeOf(revoked)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", classify(err))
	}
	return out, nil
}

// The statements of revoking and deleting endpoints. Each takes the
// endpoint lock first (see the package documentation), then the rows of
// its open jobs in id order.
const (
	lockManagedQuery = `SELECT client, hostname, node_key_hash, enrolled_at, revoked_at, revoked_by
		FROM endpoints WHERE id = $1 FOR NO KEY UPDATE`
	lockDeletedQuery = `SELECT client, hostname, node_key_hash, enrolled_at, revoked_at, revoked_by
		FROM endpoints WHERE id = $1 FOR UPDATE`
	revokeEndpointQuery = `UPDATE endpoints SET revoked_at = $1, revoked_by = $2 WHERE id = $3`
	expireEndpointJobs  = `WITH open AS (
			SELECT id FROM jobs WHERE endpoint = $2 AND state IN ('open', 'leased') ORDER BY id FOR NO KEY UPDATE
		)
		UPDATE jobs SET state = 'expired', finished_at = $1 FROM open WHERE jobs.id = open.id
		RETURNING jobs.id, jobs.revision`
	deleteEndpointQuery = `DELETE FROM endpoints WHERE id = $1`
)

// RevokeEndpoint revokes endpoint id at at, by the token named by: from
// then on the endpoint's node key is refused, it is in no snapshot (so it
// is planned no job and counts in no figure), and its open jobs expire
// now, each with a job-expired audit entry (in job id order), in the same
// transaction as the endpoint-revoked entry. Its inventory, results and
// jobs stay until DeleteEndpoint. It returns the endpoint's enrollment as
// revoked. An unknown endpoint is store.ErrNotFound, one already revoked
// store.ErrConflict.
func (db *DB) RevokeEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error) {
	var e store.Enrollment
	err := db.update(ctx, func(t *wtx) error {
		var err error
		if e, err = lockEndpoint(t, lockManagedQuery, id); err != nil {
			return err
		}
		if !e.RevokedAt.IsZero() {
			return fmt.Errorf("already revoked at %s by %s: %w", e.RevokedAt.Format(time.RFC3339), e.RevokedBy, store.ErrConflict)
		}
		if _, err := t.exec(revokeEndpointQuery, at.UnixNano(), by, id); err != nil {
			return err
		}
		e.RevokedAt, e.RevokedBy = time.Unix(0, at.UnixNano()).UTC(), by
		if err := expireJobsOf(t, e, at); err != nil {
			return err
		}
		if err := t.notify(NotifyEndpoint, id); err != nil {
			return err
		}
		return appendEndpointAudit(t, protocol.AuditEndpointRevoked, e, by, at)
	})
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("revoke endpoint %q: %w", id, err)
	}
	return e, nil
}

// DeleteEndpoint deletes endpoint id, revoked or not, with its inventory,
// jobs and results, at at, by the token named by; its audit entries stay,
// and an endpoint-deleted entry is added in the same transaction. The id
// may enroll again, as a new endpoint. It returns the enrollment deleted.
// An unknown endpoint is store.ErrNotFound.
func (db *DB) DeleteEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error) {
	var e store.Enrollment
	err := db.update(ctx, func(t *wtx) error {
		var err error
		if e, err = lockEndpoint(t, lockDeletedQuery, id); err != nil {
			return err
		}
		// The updates, jobs and attempts go with it (ON DELETE CASCADE).
		if _, err := t.exec(deleteEndpointQuery, id); err != nil {
			return err
		}
		if err := t.notify(NotifyEndpoint, id); err != nil {
			return err
		}
		return appendEndpointAudit(t, protocol.AuditEndpointDeleted, e, by, at)
	})
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("delete endpoint %q: %w", id, err)
	}
	return e, nil
}

// lockEndpoint locks endpoint id's row with query and reads its
// enrollment; an unknown one is store.ErrNotFound.
func lockEndpoint(t *wtx, query, id string) (store.Enrollment, error) {
	e := store.Enrollment{ID: id}
	var enrolled, revoked pgtype.Int8
	err := t.queryRow(query, id).Scan(&e.Client, &e.Hostname, &e.NodeKeyHash, &enrolled, &revoked, &e.RevokedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Enrollment{}, store.ErrNotFound
	}
	if err != nil {
		return store.Enrollment{}, err
	}
	e.EnrolledAt, e.RevokedAt = timeOf(enrolled), timeOf(revoked)
	return e, nil
}

// expireJobsOf expires the open jobs of e, revoked at at, each with a
// job-expired audit entry that says why.
func expireJobsOf(t *wtx, e store.Enrollment, at time.Time) error {
	rows, err := t.query(expireEndpointJobs, at.UnixNano(), e.ID)
	if err != nil {
		return err
	}
	var expired []protocol.AuditEntry
	for rows.Next() {
		a := protocol.AuditEntry{At: at, Kind: protocol.AuditJobExpired, Client: e.Client, Endpoint: e.ID,
			Detail: json.RawMessage(`{"reason":"endpoint revoked"}`)}
		if err := rows.Scan(&a.Job, &a.Revision); err != nil {
			rows.Close()
			return err
		}
		expired = append(expired, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].Job < expired[j].Job })
	for _, a := range expired {
		t.appendAudit(a)
	}
	return nil
}

// appendEndpointAudit appends the entry of kind about e, done by the token
// named by.
func appendEndpointAudit(t *wtx, kind protocol.AuditKind, e store.Enrollment, by string, at time.Time) error {
	detail, err := json.Marshal(struct {
		Hostname string `json:"hostname"`
		By       string `json:"by"`
	}{e.Hostname, by})
	if err != nil {
		return err
	}
	t.appendAudit(protocol.AuditEntry{At: at, Kind: kind, Client: e.Client, Endpoint: e.ID, Detail: detail})
	return nil
}
