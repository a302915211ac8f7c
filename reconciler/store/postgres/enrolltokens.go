package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// The statements of enrollment tokens.
const (
	enrollTokenColumns = `id, name, client, hash, labels, expires_at, max_uses, uses, created_at, created_by, revoked_at, revoked_by`
	// A name or a hash already stored, by a token revoked or not, makes
	// the insert return no row.
	insertEnrollTokenQuery = `INSERT INTO enroll_tokens (name, client, hash, labels, expires_at, max_uses, created_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id`
	// FOR UPDATE: two replicas using the last use of a token take turns,
	// and the second sees it used up.
	lockEnrollTokenQuery   = `SELECT ` + enrollTokenColumns + ` FROM enroll_tokens WHERE id = $1 FOR UPDATE`
	revokeEnrollTokenQuery = `UPDATE enroll_tokens SET revoked_at = $1, revoked_by = $2 WHERE id = $3`
	useEnrollTokenQuery    = `UPDATE enroll_tokens SET uses = uses + 1 WHERE id = $1`
)

// CreateEnrollToken stores a new enrollment token with an
// enroll-token-created audit entry (naming t.CreatedBy), in one
// transaction, and returns it with its id. t needs a name, a client, a
// hash of sha256.Size bytes and a creation time. A name already taken, by
// a token revoked or not, or a hash another token has, is
// store.ErrConflict.
func (db *DB) CreateEnrollToken(ctx context.Context, t store.EnrollToken) (store.EnrollToken, error) {
	if t.Name == "" || t.Client == "" || len(t.Hash) != sha256.Size || t.CreatedAt.IsZero() || t.MaxUses < 0 {
		return store.EnrollToken{}, fmt.Errorf("create enrollment token %q: name, client, hash and creation time are required, and max uses must not be negative: %w", t.Name, store.ErrInvalid)
	}
	labels, err := labelsArg(t.Labels)
	if err != nil {
		return store.EnrollToken{}, fmt.Errorf("create enrollment token %q: %w", t.Name, err)
	}
	var expires, maxUses *int64
	if !t.ExpiresAt.IsZero() {
		n := t.ExpiresAt.UnixNano()
		expires = &n
	}
	if t.MaxUses > 0 {
		maxUses = &t.MaxUses
	}
	t.Uses = 0
	err = db.update(ctx, func(w *wtx) error {
		err := w.queryRow(insertEnrollTokenQuery, t.Name, t.Client, t.Hash, labels, expires, maxUses, t.CreatedAt.UnixNano(), t.CreatedBy).Scan(&t.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("an enrollment token with this name exists (revoked tokens keep their names); choose another name: %w", store.ErrConflict)
		}
		if err != nil {
			return err
		}
		w.appendAudit(enrollTokenAudit(protocol.AuditEnrollTokenCreated, t, t.CreatedBy, t.CreatedAt))
		return nil
	})
	if err != nil {
		return store.EnrollToken{}, fmt.Errorf("create enrollment token %q: %w", t.Name, err)
	}
	return t, nil
}

// EnrollTokens returns every enrollment token, revoked ones included,
// by id.
func (db *DB) EnrollTokens(ctx context.Context) ([]store.EnrollToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+enrollTokenColumns+` FROM enroll_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("enrollment tokens: %w", classify(err))
	}
	out, err := scanAll(rows, scanEnrollToken)
	if err != nil {
		return nil, fmt.Errorf("enrollment tokens: %w", classify(err))
	}
	return out, nil
}

// EnrollTokenByHash returns the enrollment token whose secret hashes to
// hash, revoked or not, or store.ErrNotFound.
func (db *DB) EnrollTokenByHash(ctx context.Context, hash []byte) (store.EnrollToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+enrollTokenColumns+` FROM enroll_tokens WHERE hash = $1`, hash)
	if err != nil {
		return store.EnrollToken{}, fmt.Errorf("enrollment token: %w", classify(err))
	}
	t, found, err := scanOneEnrollToken(rows)
	if err != nil {
		return store.EnrollToken{}, fmt.Errorf("enrollment token: %w", classify(err))
	}
	if !found {
		return store.EnrollToken{}, fmt.Errorf("enrollment token: %w", store.ErrNotFound)
	}
	return t, nil
}

// RevokeEnrollToken revokes the enrollment token id at at, by the admin
// token named by, with an enroll-token-revoked audit entry, in one
// transaction, and returns it as revoked. An unknown token is
// store.ErrNotFound, one already revoked store.ErrConflict. Endpoints it
// enrolled stay enrolled.
func (db *DB) RevokeEnrollToken(ctx context.Context, id int64, by string, at time.Time) (store.EnrollToken, error) {
	var t store.EnrollToken
	err := db.update(ctx, func(w *wtx) error {
		var err error
		if t, err = lockEnrollToken(w, id); err != nil {
			return err
		}
		if !t.RevokedAt.IsZero() {
			return fmt.Errorf("already revoked at %s by %s: %w", t.RevokedAt.Format(time.RFC3339), t.RevokedBy, store.ErrConflict)
		}
		if _, err := w.exec(revokeEnrollTokenQuery, at.UnixNano(), by, id); err != nil {
			return err
		}
		t.RevokedAt, t.RevokedBy = time.Unix(0, at.UnixNano()).UTC(), by
		w.appendAudit(enrollTokenAudit(protocol.AuditEnrollTokenRevoked, t, by, at))
		return nil
	})
	if err != nil {
		return store.EnrollToken{}, fmt.Errorf("revoke enrollment token %d: %w", id, err)
	}
	return t, nil
}

// lockEnrollToken reads and locks token id inside a write transaction; an
// unknown one is store.ErrNotFound.
func lockEnrollToken(w *wtx, id int64) (store.EnrollToken, error) {
	rows, err := w.query(lockEnrollTokenQuery, id)
	if err != nil {
		return store.EnrollToken{}, err
	}
	t, found, err := scanOneEnrollToken(rows)
	if err != nil {
		return store.EnrollToken{}, err
	}
	if !found {
		return store.EnrollToken{}, fmt.Errorf("enrollment token %d: %w", id, store.ErrNotFound)
	}
	return t, nil
}

// useEnrollToken uses token id for an enrollment of client at at, inside
// the enrollment's transaction: a token that cannot enroll now (a
// store.TokenRefusal) is refused, otherwise one of its uses is counted.
// It returns the token as it was before the use.
func useEnrollToken(w *wtx, id int64, client string, at time.Time) (store.EnrollToken, error) {
	t, err := lockEnrollToken(w, id)
	if err != nil {
		return store.EnrollToken{}, err
	}
	if why := t.Refusal(client, at); why != "" {
		return store.EnrollToken{}, fmt.Errorf("token %q: %w", t.Name, why)
	}
	if _, err := w.exec(useEnrollTokenQuery, id); err != nil {
		return store.EnrollToken{}, err
	}
	return t, nil
}

// scanOneEnrollToken reads the one row rows may hold, and closes them.
func scanOneEnrollToken(rows pgx.Rows) (store.EnrollToken, bool, error) {
	var t store.EnrollToken
	var err error
	found := rows.Next()
	if found {
		t, err = scanEnrollToken(rows)
	}
	rows.Close()
	if err := errors.Join(err, rows.Err()); err != nil {
		return store.EnrollToken{}, false, err
	}
	return t, found, nil
}

// scanEnrollToken reads one row of enrollTokenColumns.
func scanEnrollToken(rows pgx.Rows) (store.EnrollToken, error) {
	var t store.EnrollToken
	var expires, maxUses, created, revoked pgtype.Int8
	if err := rows.Scan(&t.ID, &t.Name, &t.Client, &t.Hash, &t.Labels, &expires, &maxUses, &t.Uses,
		&created, &t.CreatedBy, &revoked, &t.RevokedBy); err != nil {
		return store.EnrollToken{}, err
	}
	t.MaxUses = maxUses.Int64
	t.ExpiresAt, t.CreatedAt, t.RevokedAt = timeOf(expires), timeOf(created), timeOf(revoked)
	return t, nil
}

// labelsArg encodes labels as a JSON object; none is NULL.
func labelsArg(labels map[string]string) (any, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	return string(b), nil
}

// enrollTokenAudit is the audit entry of kind about t, done by the admin
// token named by. It names the token, never its hash.
func enrollTokenAudit(kind protocol.AuditKind, t store.EnrollToken, by string, at time.Time) protocol.AuditEntry {
	return protocol.AuditEntry{At: at, Kind: kind, Client: t.Client, Detail: store.EnrollTokenDetail(t, by)}
}
