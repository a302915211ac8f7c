package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// The statements of the admin API's tokens.
var (
	insertTokenQuery = writeQuery(`INSERT INTO tokens (name, hash, scopes, clients, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	tokenQuery = writeQuery(`SELECT name, hash, scopes, clients, created_at, created_by, last_used, revoked_at, revoked_by
		FROM tokens WHERE name = ?`)
	revokeTokenQuery = writeQuery(`UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE name = ?`)
	usedTokenQuery   = writeQuery(`UPDATE tokens SET last_used = max(coalesce(last_used, 0), ?) WHERE name = ?`)
	tokensQuery      = readQuery(`SELECT name, hash, scopes, clients, created_at, created_by, last_used, revoked_at, revoked_by
		FROM tokens ORDER BY name`)
)

// CreateToken stores a new token with a token-created audit entry (naming
// t.CreatedBy), in one transaction. t needs a name, a hash of
// sha256.Size bytes, at least one scope and a creation time. A name
// already taken, by a token revoked or not, or a hash another token has,
// is store.ErrConflict.
func (db *DB) CreateToken(ctx context.Context, t store.Token) error {
	switch {
	case t.Name == "" || len(t.Hash) != sha256.Size || len(t.Scopes) == 0 || t.CreatedAt.IsZero():
		return fmt.Errorf("create token %q: name, hash, scopes and creation time are required: %w", t.Name, store.ErrInvalid)
	}
	scopes, err := json.Marshal(t.Scopes)
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	clients, err := jsonArg(t.Clients)
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	err = db.update(ctx, func(tx *wtx) error {
		res, err := tx.exec(insertTokenQuery, t.Name, t.Hash, string(scopes), clients, t.CreatedAt.UnixNano(), t.CreatedBy)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("a token with this name exists (revoked tokens keep their names); choose another name: %w", store.ErrConflict)
		}
		return appendTokenAudit(tx, protocol.AuditTokenCreated, t, t.CreatedBy, t.CreatedAt)
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return nil
}

// Tokens returns every token, revoked ones included, sorted by name.
func (db *DB) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.stmts.lookup(db.read, tokensQuery).QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	out, err := scanAll(rows, scanToken)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes the token named name at at, by the token named by,
// with a token-revoked audit entry, in one transaction, and returns the
// token as revoked. An unknown token is store.ErrNotFound, one already
// revoked store.ErrConflict.
func (db *DB) RevokeToken(ctx context.Context, name, by string, at time.Time) (store.Token, error) {
	var t store.Token
	err := db.update(ctx, func(tx *wtx) error {
		rows, err := tx.query(tokenQuery, name)
		if err != nil {
			return err
		}
		found := rows.Next()
		if found {
			t, err = scanToken(rows)
		}
		if err := errors.Join(err, rows.Err(), rows.Close()); err != nil {
			return err
		}
		switch {
		case !found:
			return store.ErrNotFound
		case !t.RevokedAt.IsZero():
			return fmt.Errorf("already revoked at %s by %s: %w", t.RevokedAt.Format(time.RFC3339), t.RevokedBy, store.ErrConflict)
		}
		if _, err := tx.exec(revokeTokenQuery, at.UnixNano(), by, name); err != nil {
			return err
		}
		t.RevokedAt, t.RevokedBy = time.Unix(0, at.UnixNano()).UTC(), by
		return appendTokenAudit(tx, protocol.AuditTokenRevoked, t, by, at)
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("revoke token %q: %w", name, err)
	}
	return t, nil
}

// TokenUsed records that the token named name was accepted at at (a later
// time recorded before wins). The write may be lost to a power cut (see
// updateLazy): it is a hint for people, not a record.
func (db *DB) TokenUsed(ctx context.Context, name string, at time.Time) error {
	err := db.updateLazy(ctx, func(tx *wtx) error {
		_, err := tx.exec(usedTokenQuery, at.UnixNano(), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("token %q used: %w", name, err)
	}
	return nil
}

// scanToken reads one row of tokenQuery's columns.
func scanToken(rows *sql.Rows) (store.Token, error) {
	var t store.Token
	var scopes string
	var clients sql.NullString
	var created, used, revoked sql.NullInt64
	if err := rows.Scan(&t.Name, &t.Hash, &scopes, &clients, &created, &t.CreatedBy, &used, &revoked, &t.RevokedBy); err != nil {
		return store.Token{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return store.Token{}, fmt.Errorf("token %q: scopes: %w", t.Name, err)
	}
	var err error
	if t.Clients, err = jsonList[string](clients); err != nil {
		return store.Token{}, fmt.Errorf("token %q: clients: %w", t.Name, err)
	}
	t.CreatedAt, t.LastUsed, t.RevokedAt = timeOf(created), timeOf(used), timeOf(revoked)
	return t, nil
}

// appendTokenAudit appends the entry of kind about t, done by the token
// named by. It names the token, its scopes and clients, never its hash.
func appendTokenAudit(tx *wtx, kind protocol.AuditKind, t store.Token, by string, at time.Time) error {
	detail, err := json.Marshal(struct {
		Token   string           `json:"token"`
		Scopes  []protocol.Scope `json:"scopes"`
		Clients []string         `json:"clients,omitempty"`
		By      string           `json:"by"`
	}{t.Name, t.Scopes, t.Clients, by})
	if err != nil {
		return err
	}
	return appendAudit(tx, protocol.AuditEntry{At: at, Kind: kind, Detail: detail})
}
