package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// AppendAudit appends an entry to the audit log (for events the store does
// not record itself, such as a halt or a resume). The entry's ID is
// assigned by the store.
func (db *DB) AppendAudit(ctx context.Context, e protocol.AuditEntry) error {
	if e.Kind == "" || e.At.IsZero() {
		return fmt.Errorf("append audit entry: kind and time are required: %w", store.ErrInvalid)
	}
	if len(e.Detail) > 0 && !json.Valid(e.Detail) {
		return fmt.Errorf("append %s audit entry: detail is not JSON: %w", e.Kind, store.ErrInvalid)
	}
	err := db.update(ctx, func(tx *wtx) error { return appendAudit(tx, e) })
	if err != nil {
		return fmt.Errorf("append %s audit entry: %w", e.Kind, err)
	}
	return nil
}

var appendAuditQuery = writeQuery(`INSERT INTO audit (at, kind, client, endpoint, revision, job, detail)
	VALUES (?, ?, ?, ?, ?, ?, ?)`)

// appendAudit appends e inside tx, so an entry is stored exactly when the
// change it records is.
func appendAudit(tx *wtx, e protocol.AuditEntry) error {
	var detail any
	if len(e.Detail) > 0 {
		detail = string(e.Detail)
	}
	if _, err := tx.exec(appendAuditQuery, timeArg(e.At), string(e.Kind), e.Client, e.Endpoint, e.Revision, e.Job, detail); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Audit returns up to limit audit entries with an id greater than afterID,
// oldest first. Page through the log by passing the last id seen.
func (db *DB) Audit(ctx context.Context, afterID int64, limit int) ([]protocol.AuditEntry, error) {
	return db.AuditFor(ctx, afterID, limit, nil)
}

// fleetAuditKinds are the entries without a client that a reader limited
// to some clients sees: the revisions of the whole fleet (its shared files
// govern every client, and the fleet repo shows them to every reader) and
// restores (they explain a gap in every client's history). Other entries
// without a client (token management) are not theirs.
var fleetAuditKinds = []protocol.AuditKind{protocol.AuditRevisionApplied, protocol.AuditRevisionRefused, protocol.AuditRestore}

// AuditFor is Audit for a reader limited to clients (every client when
// clients is empty): the entries of those clients, and the entries of the
// whole fleet's revisions and of restores, which concern every client.
func (db *DB) AuditFor(ctx context.Context, afterID int64, limit int, clients []string) ([]protocol.AuditEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("audit: limit must be positive: %w", store.ErrInvalid)
	}
	q := `SELECT id, at, kind, client, endpoint, revision, job, detail FROM audit WHERE id > ?`
	args := []any{afterID}
	if len(clients) > 0 {
		q += ` AND (client IN (?` + strings.Repeat(`, ?`, len(clients)-1) + `) OR (client = '' AND kind IN (?` +
			strings.Repeat(`, ?`, len(fleetAuditKinds)-1) + `)))`
		for _, c := range clients {
			args = append(args, c)
		}
		for _, k := range fleetAuditKinds {
			args = append(args, string(k))
		}
	}
	rows, err := db.read.QueryContext(ctx, q+` ORDER BY id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var entries []protocol.AuditEntry
	for rows.Next() {
		var e protocol.AuditEntry
		var at sql.NullInt64
		var kind string
		var detail sql.NullString
		if err := rows.Scan(&e.ID, &at, &kind, &e.Client, &e.Endpoint, &e.Revision, &e.Job, &detail); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		e.At = timeOf(at)
		e.Kind = protocol.AuditKind(kind)
		if detail.Valid {
			e.Detail = json.RawMessage(detail.String)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return entries, nil
}
