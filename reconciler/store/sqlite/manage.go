package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Endpoints lists the enrolled endpoints, revoked ones included, sorted by
// id; with clients, only those clients' endpoints.
func (db *DB) Endpoints(ctx context.Context, clients []string) ([]store.EndpointRecord, error) {
	q := `SELECT id, client, hostname, enrolled_at, last_seen, revoked_at, revoked_by FROM endpoints`
	args := make([]any, len(clients))
	if len(clients) > 0 {
		q += ` WHERE client IN (?` + strings.Repeat(`, ?`, len(clients)-1) + `)`
		for i, c := range clients {
			args[i] = c
		}
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []store.EndpointRecord
	for rows.Next() {
		var e store.EndpointRecord
		var enrolled, seen, revoked sql.NullInt64
		if err := rows.Scan(&e.ID, &e.Client, &e.Hostname, &enrolled, &seen, &revoked, &e.RevokedBy); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		e.EnrolledAt, e.LastSeen, e.RevokedAt = timeOf(enrolled), timeOf(seen), timeOf(revoked)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// The statements of revoking and deleting endpoints.
var (
	manageEndpointQuery = writeQuery(`SELECT client, hostname, node_key_hash, enrolled_at, revoked_at, revoked_by
		FROM endpoints WHERE id = ?`)
	revokeEndpointQuery = writeQuery(`UPDATE endpoints SET revoked_at = ?, revoked_by = ? WHERE id = ?`)
	expireEndpointJobs  = writeQuery(`UPDATE jobs SET state = 'expired', finished_at = ?
		WHERE endpoint = ? AND state IN ('open', 'leased') RETURNING id, revision`)
	deleteEndpointQuery = writeQuery(`DELETE FROM endpoints WHERE id = ?`)
)

// RevokeEndpoint revokes endpoint id at at, by the token named by: from
// then on the endpoint's node key is refused, it is in no snapshot (so it
// is planned no job and counts in no figure), and its open jobs expire
// now, each with a job-expired audit entry, in the same transaction as
// the endpoint-revoked entry. Its inventory, results and jobs stay until
// DeleteEndpoint. It returns the endpoint's enrollment as revoked. An
// unknown endpoint is store.ErrNotFound, one already revoked
// store.ErrConflict.
func (db *DB) RevokeEndpoint(ctx context.Context, id, by string, at time.Time) (store.Enrollment, error) {
	var e store.Enrollment
	err := db.update(ctx, func(tx *wtx) error {
		var err error
		if e, err = manageEndpoint(tx, id); err != nil {
			return err
		}
		if !e.RevokedAt.IsZero() {
			return fmt.Errorf("already revoked at %s by %s: %w", e.RevokedAt.Format(time.RFC3339), e.RevokedBy, store.ErrConflict)
		}
		if _, err := tx.exec(revokeEndpointQuery, at.UnixNano(), by, id); err != nil {
			return err
		}
		e.RevokedAt, e.RevokedBy = time.Unix(0, at.UnixNano()).UTC(), by
		if err := expireJobsOf(tx, e, at); err != nil {
			return err
		}
		return appendEndpointAudit(tx, protocol.AuditEndpointRevoked, e, by, at)
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
	err := db.update(ctx, func(tx *wtx) error {
		var err error
		if e, err = manageEndpoint(tx, id); err != nil {
			return err
		}
		// The updates, jobs and attempts go with it (ON DELETE CASCADE).
		if _, err := tx.exec(deleteEndpointQuery, id); err != nil {
			return err
		}
		return appendEndpointAudit(tx, protocol.AuditEndpointDeleted, e, by, at)
	})
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("delete endpoint %q: %w", id, err)
	}
	return e, nil
}

// manageEndpoint reads endpoint id's enrollment inside a write
// transaction; an unknown one is store.ErrNotFound.
func manageEndpoint(tx *wtx, id string) (store.Enrollment, error) {
	e := store.Enrollment{ID: id}
	var enrolled, revoked sql.NullInt64
	err := tx.queryRow(manageEndpointQuery, id).Scan(&e.Client, &e.Hostname, &e.NodeKeyHash, &enrolled, &revoked, &e.RevokedBy)
	if errors.Is(err, sql.ErrNoRows) {
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
func expireJobsOf(tx *wtx, e store.Enrollment, at time.Time) error {
	rows, err := tx.query(expireEndpointJobs, at.UnixNano(), e.ID)
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
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	for _, a := range expired {
		if err := appendAudit(tx, a); err != nil {
			return err
		}
	}
	return nil
}

// appendEndpointAudit appends the entry of kind about e, done by the token
// named by.
func appendEndpointAudit(tx *wtx, kind protocol.AuditKind, e store.Enrollment, by string, at time.Time) error {
	detail, err := json.Marshal(struct {
		Hostname string `json:"hostname"`
		By       string `json:"by"`
	}{e.Hostname, by})
	if err != nil {
		return err
	}
	return appendAudit(tx, protocol.AuditEntry{At: at, Kind: kind, Client: e.Client, Endpoint: e.ID, Detail: detail})
}
