package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// auditLockKey is the transaction-scoped advisory lock under which audit
// entries (and revisions) get their ids. The number is "patchdau" in
// ASCII, unlikely to be another application's key.
//
// Why a lock: ids come from a sequence, and PostgreSQL hands out sequence
// numbers when rows are inserted, not when they commit. Without the lock,
// a transaction could take id 10, another id 11 and commit first; a reader
// paging with Audit(afterID) would see 11, ask for entries after 11 next,
// and never see 10. Holding the lock from the first id a transaction takes
// until its commit makes ids become visible in the order they were given,
// so every page is a prefix of what is to come. (An advisory lock rather
// than a lock on the table: autovacuum's lock on the table would conflict
// with one that excludes writers, and readers must never wait.)
//
// The cost is that writes with audit entries commit one at a time. The
// lock is taken as late as possible: a write's entries wait in its wtx and
// are inserted, under the lock, just before its commit, so the lock is
// held for one round trip and the commit. Inventory reports, the bulk of
// the writes, have no audit entry and never take it.
const auditLockKey int64 = 0x7061746368646175

const (
	auditLockQuery   = `SELECT pg_advisory_xact_lock($1)`
	appendAuditQuery = `INSERT INTO audit (at, kind, client, endpoint, revision, job, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`
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
	err := db.update(ctx, func(t *wtx) error {
		t.appendAudit(e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %s audit entry: %w", e.Kind, err)
	}
	return nil
}

// appendAudit adds e to the entries t appends before it commits, so an
// entry is stored exactly when the change it records is.
func (t *wtx) appendAudit(e protocol.AuditEntry) {
	t.audit = append(t.audit, e)
}

// flushAudit takes the audit lock and inserts the entries appendAudit
// collected, in order, in one round trip.
func (t *wtx) flushAudit() error {
	if len(t.audit) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(auditLockQuery, auditLockKey)
	for _, e := range t.audit {
		var detail any
		if len(e.Detail) > 0 {
			detail = json.RawMessage(e.Detail)
		}
		b.Queue(appendAuditQuery, e.At.UnixNano(), string(e.Kind), e.Client, e.Endpoint, e.Revision, e.Job, detail)
	}
	if err := t.send(b); err != nil {
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
var fleetAuditKinds = []string{string(protocol.AuditRevisionApplied), string(protocol.AuditRevisionRefused), string(protocol.AuditRestore)}

// AuditFor is Audit for a reader limited to clients (every client when
// clients is empty): the entries of those clients, and the entries of the
// whole fleet's revisions and of restores, which concern every client.
func (db *DB) AuditFor(ctx context.Context, afterID int64, limit int, clients []string) ([]protocol.AuditEntry, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("audit: limit must be positive: %w", store.ErrInvalid)
	}
	q := `SELECT id, at, kind, client, endpoint, revision, job, detail FROM audit WHERE id > $1`
	args := []any{afterID, limit}
	if len(clients) > 0 {
		q += ` AND (client = ANY($3) OR (client = '' AND kind = ANY($4)))`
		args = append(args, clients, fleetAuditKinds)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY id LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", classify(err))
	}
	defer rows.Close()
	var entries []protocol.AuditEntry
	for rows.Next() {
		var e protocol.AuditEntry
		var at int64
		var kind string
		var detail []byte
		if err := rows.Scan(&e.ID, &at, &kind, &e.Client, &e.Endpoint, &e.Revision, &e.Job, &detail); err != nil {
			return nil, fmt.Errorf("audit: %w", classify(err))
		}
		e.At = time.Unix(0, at).UTC()
		e.Kind = protocol.AuditKind(kind)
		if detail != nil {
			e.Detail = json.RawMessage(detail)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", classify(err))
	}
	return entries, nil
}
