package sqlite

// Enrollment: new endpoints and their identities.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Enroll records a new endpoint and an enroll audit entry. An id already
// enrolled is store.ErrConflict. With e.Token, the enrollment token is
// used in the same transaction: one that cannot enroll now is refused
// (an error wrapping its store.TokenRefusal) and nothing is stored; an
// unknown one is store.ErrNotFound.
func (db *DB) Enroll(ctx context.Context, e store.Enrollment) error {
	if e.ID == "" || e.Client == "" {
		return fmt.Errorf("enroll endpoint %q of client %q: id and client are required: %w", e.ID, e.Client, store.ErrInvalid)
	}
	if len(e.NodeKeyHash) == 0 || e.EnrolledAt.IsZero() {
		return fmt.Errorf("enroll endpoint %q: node key hash and enrollment time are required: %w", e.ID, store.ErrInvalid)
	}
	labels, err := labelsArg(e.Labels)
	if err != nil {
		return fmt.Errorf("enroll endpoint %q: %w", e.ID, err)
	}
	var token any
	if e.Token != 0 {
		token = e.Token
	}
	err = db.update(ctx, func(tx *wtx) error {
		var tokenName string
		if e.Token != 0 {
			t, err := useEnrollToken(tx, e.Token, e.Client, e.EnrolledAt)
			if err != nil {
				return err
			}
			tokenName = t.Name
		}
		res, err := tx.exec(enrollQuery, e.ID, e.Client, e.Hostname, e.NodeKeyHash, timeArg(e.EnrolledAt), labels, labels, token)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("already enrolled: %w", store.ErrConflict)
		}
		return appendAudit(tx, protocol.AuditEntry{
			At: e.EnrolledAt, Kind: protocol.AuditEnroll, Client: e.Client, Endpoint: e.ID, Detail: store.EnrollDetail(e.Hostname, tokenName),
		})
	})
	if err != nil {
		return fmt.Errorf("enroll endpoint %q: %w", e.ID, err)
	}
	return nil
}

var (
	// A new endpoint's job numbers are unknown until its first report:
	// its agent may have seen some under an earlier enrollment. Its
	// labels, until it reports, are its enrollment labels.
	enrollQuery = writeQuery(`INSERT INTO endpoints (id, client, hostname, node_key_hash, enrolled_at, job_seq_unknown, labels, enroll_labels, enroll_token)
		VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	// endpointQuery runs on every agent request, to check its node key.
	endpointQuery = readQuery(`SELECT client, hostname, node_key_hash, enrolled_at, revoked_at, revoked_by, enroll_labels, enroll_token
		FROM endpoints WHERE id = ?`)
)

// EndpointByID returns an endpoint's enrollment, revoked or not, or
// store.ErrNotFound.
func (db *DB) EndpointByID(ctx context.Context, id string) (store.Enrollment, error) {
	e := store.Enrollment{ID: id}
	var enrolled, revoked, token sql.NullInt64
	var labels sql.NullString
	err := db.stmts.lookup(db.read, endpointQuery).QueryRowContext(ctx, id).
		Scan(&e.Client, &e.Hostname, &e.NodeKeyHash, &enrolled, &revoked, &e.RevokedBy, &labels, &token)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, err)
	}
	e.EnrolledAt = timeOf(enrolled)
	e.RevokedAt = timeOf(revoked)
	e.Token = token.Int64
	if e.Labels, err = labelsOf(labels); err != nil {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: enrollment %w", id, err)
	}
	return e, nil
}
