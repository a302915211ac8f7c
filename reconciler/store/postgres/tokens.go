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

// The statements of the admin API's tokens.
const (
	// A name or a hash already stored, by a token revoked or not, makes
	// the insert do nothing.
	insertTokenQuery = `INSERT INTO tokens (name, hash, scopes, clients, created_at, created_by)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`
	tokenColumns     = `name, hash, scopes, clients, created_at, created_by, last_used, revoked_at, revoked_by`
	lockTokenQuery   = `SELECT ` + tokenColumns + ` FROM tokens WHERE name = $1 FOR UPDATE`
	revokeTokenQuery = `UPDATE tokens SET revoked_at = $1, revoked_by = $2 WHERE name = $3`
	usedTokenQuery   = `UPDATE tokens SET last_used = greatest(coalesce(last_used, 0), $1) WHERE name = $2`
)

// CreateToken stores a new token with a token-created audit entry (naming
// t.CreatedBy), in one transaction. t needs a name, a hash of
// sha256.Size bytes, at least one scope and a creation time. A name
// already taken, by a token revoked or not, or a hash another token has,
// is store.ErrConflict.
func (db *DB) CreateToken(ctx context.Context, t store.Token) error {
	if t.Name == "" || len(t.Hash) != sha256.Size || len(t.Scopes) == 0 || t.CreatedAt.IsZero() {
		return fmt.Errorf("create token %q: name, hash, scopes and creation time are required: %w", t.Name, store.ErrInvalid)
	}
	scopes := make([]string, len(t.Scopes))
	for i, s := range t.Scopes {
		scopes[i] = string(s)
	}
	err := db.update(ctx, func(w *wtx) error {
		tag, err := w.exec(insertTokenQuery, t.Name, t.Hash, scopes, listArg(t.Clients), t.CreatedAt.UnixNano(), t.CreatedBy)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("a token with this name exists (revoked tokens keep their names); choose another name: %w", store.ErrConflict)
		}
		if err := w.notify(NotifyTokens); err != nil {
			return err
		}
		return appendTokenAudit(w, protocol.AuditTokenCreated, t, t.CreatedBy, t.CreatedAt)
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return nil
}

// Tokens returns every token, revoked ones included, sorted by name.
func (db *DB) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", classify(err))
	}
	out, err := scanAll(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", classify(err))
	}
	return out, nil
}

// RevokeToken revokes the token named name at at, by the token named by,
// with a token-revoked audit entry, in one transaction, and returns the
// token as revoked. An unknown token is store.ErrNotFound, one already
// revoked store.ErrConflict.
func (db *DB) RevokeToken(ctx context.Context, name, by string, at time.Time) (store.Token, error) {
	var t store.Token
	err := db.update(ctx, func(w *wtx) error {
		rows, err := w.query(lockTokenQuery, name)
		if err != nil {
			return err
		}
		found := rows.Next()
		if found {
			t, err = scanToken(rows)
		}
		rows.Close()
		if err := errors.Join(err, rows.Err()); err != nil {
			return err
		}
		switch {
		case !found:
			return store.ErrNotFound
		case !t.RevokedAt.IsZero():
			return fmt.Errorf("already revoked at %s by %s: %w", t.RevokedAt.Format(time.RFC3339), t.RevokedBy, store.ErrConflict)
		}
		if _, err := w.exec(revokeTokenQuery, at.UnixNano(), by, name); err != nil {
			return err
		}
		t.RevokedAt, t.RevokedBy = time.Unix(0, at.UnixNano()).UTC(), by
		if err := w.notify(NotifyTokens); err != nil {
			return err
		}
		return appendTokenAudit(w, protocol.AuditTokenRevoked, t, by, at)
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %q: %w", name, err)
	}
	return t, nil
}

// TokenUsed records that the token named name was accepted at at (a later
// time recorded before wins). The commit does not wait for the disk (see
// the package documentation): it is a hint for people, not a record.
func (db *DB) TokenUsed(ctx context.Context, name string, at time.Time) error {
	err := db.updateLazy(ctx, func(w *wtx) error {
		_, err := w.exec(usedTokenQuery, at.UnixNano(), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("token %q used: %w", name, err)
	}
	return nil
}

// scanToken reads one row of tokenColumns.
func scanToken(rows pgx.Rows) (store.Token, error) {
	var t store.Token
	var scopes []string
	var created, used, revoked pgtype.Int8
	if err := rows.Scan(&t.Name, &t.Hash, &scopes, &t.Clients, &created, &t.CreatedBy, &used, &revoked, &t.RevokedBy); err != nil {
		return store.Token{}, err
	}
	for _, s := range scopes {
		t.Scopes = append(t.Scopes, protocol.Scope(s))
	}
	t.CreatedAt, t.LastUsed, t.RevokedAt = timeOf(created), timeOf(used), timeOf(revoked)
	return t, nil
}

// appendTokenAudit appends the entry of kind about t, done by the token
// named by. It names the token, its scopes and clients, never its hash.
func appendTokenAudit(w *wtx, kind protocol.AuditKind, t store.Token, by string, at time.Time) error {
	detail, err := json.Marshal(struct {
		Token   string           `json:"token"`
		Scopes  []protocol.Scope `json:"scopes"`
		Clients []string         `json:"clients,omitempty"`
		By      string           `json:"by"`
	}{t.Name, t.Scopes, t.Clients, by})
	if err != nil {
		return err
	}
	w.appendAudit(protocol.AuditEntry{At: at, Kind: kind, Detail: detail})
	return nil
}
