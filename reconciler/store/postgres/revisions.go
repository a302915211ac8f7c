package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// RecordRevision records one applied or refused revision and its audit
// entry.
func (db *DB) RecordRevision(ctx context.Context, r store.Revision) error {
	return db.RecordRevisions(ctx, []store.Revision{r})
}

const recordRevisionQuery = `INSERT INTO revisions (hash, status, at, client, problems, reason) VALUES ($1, $2, $3, $4, $5, $6)`

// RecordRevisions records revisions and their audit entries in one
// transaction: a commit applied to a hundred clients costs one commit, not
// a hundred. "Last" in Revisions is the order of recording: the
// transaction takes the audit lock (see auditLockKey) before it numbers
// its revisions, so their ids, too, become visible in order.
func (db *DB) RecordRevisions(ctx context.Context, rs []store.Revision) error {
	type row struct {
		r      store.Revision
		kind   protocol.AuditKind
		detail json.RawMessage
	}
	rows := make([]row, 0, len(rs))
	for _, r := range rs {
		kind := protocol.AuditRevisionApplied
		switch {
		case r.Hash == "":
			return fmt.Errorf("record revision: hash is required: %w", store.ErrInvalid)
		case r.At.IsZero():
			return fmt.Errorf("record revision %q: time is required: %w", r.Hash, store.ErrInvalid)
		case r.Status == store.RevisionRefused:
			kind = protocol.AuditRevisionRefused
		case r.Status != store.RevisionApplied:
			return fmt.Errorf("record revision %q: status %q is neither %q nor %q: %w",
				r.Hash, r.Status, store.RevisionApplied, store.RevisionRefused, store.ErrInvalid)
		}
		var detail json.RawMessage
		if len(r.Problems) > 0 || r.Reason != "" {
			var err error
			if detail, err = json.Marshal(struct {
				Reason   string   `json:"reason,omitempty"`
				Problems []string `json:"problems,omitempty"`
			}{r.Reason, r.Problems}); err != nil {
				return fmt.Errorf("record revision %q: problems: %w", r.Hash, err)
			}
		}
		rows = append(rows, row{r, kind, detail})
	}
	if len(rows) == 0 {
		return nil
	}
	err := db.update(ctx, func(t *wtx) error {
		if _, err := db.checkFence(t); err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(auditLockQuery, auditLockKey)
		for _, w := range rows {
			r := w.r
			b.Queue(recordRevisionQuery, r.Hash, r.Status, r.At.UnixNano(), r.Client, listArg(r.Problems), r.Reason)
			t.appendAudit(protocol.AuditEntry{At: r.At, Kind: w.kind, Client: r.Client, Revision: r.Hash, Detail: w.detail})
		}
		return t.send(b)
	})
	if err != nil {
		return fmt.Errorf("record revisions: %w", err)
	}
	return nil
}

// Revisions returns, for every client with a recorded revision (and "" for
// the whole fleet), the last applied and the last attempted revision, and
// the refusedLimit most recently refused revisions, newest first. "Last" is
// the order of recording.
func (db *DB) Revisions(ctx context.Context, refusedLimit int) (store.RevisionStatus, error) {
	st := store.RevisionStatus{Clients: []store.ClientRevisions{}, Refused: []store.Revision{}}
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		// For each client: the newest row, and the newest applied row.
		rows, err := tx.Query(ctx, `
			SELECT r.hash, r.status, r.at, r.client, r.problems, r.reason FROM revisions r
			JOIN (SELECT client, max(id) AS id FROM revisions GROUP BY client
			      UNION SELECT client, max(id) FROM revisions WHERE status = 'applied' GROUP BY client) last
			  ON r.id = last.id
			ORDER BY r.client, r.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRevision(rows)
			if err != nil {
				return err
			}
			n := len(st.Clients)
			if n == 0 || st.Clients[n-1].Client != r.Client {
				st.Clients = append(st.Clients, store.ClientRevisions{Client: r.Client})
				n++
			}
			c := &st.Clients[n-1]
			// Rows of one client come oldest first, so the last one seen
			// is the last attempted.
			c.LastAttempted = r
			if r.Status == store.RevisionApplied {
				applied := r
				c.LastApplied = &applied
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if refusedLimit <= 0 {
			return nil
		}
		refused, err := tx.Query(ctx, `SELECT hash, status, at, client, problems, reason FROM revisions
			WHERE status = 'refused' ORDER BY id DESC LIMIT $1`, refusedLimit)
		if err != nil {
			return err
		}
		defer refused.Close()
		for refused.Next() {
			r, err := scanRevision(refused)
			if err != nil {
				return err
			}
			st.Refused = append(st.Refused, r)
		}
		return refused.Err()
	})
	if err != nil {
		return store.RevisionStatus{}, fmt.Errorf("revisions: %w", classify(err))
	}
	return st, nil
}

func scanRevision(rows pgx.Rows) (store.Revision, error) {
	var r store.Revision
	var at pgtype.Int8
	if err := rows.Scan(&r.Hash, &r.Status, &at, &r.Client, &r.Problems, &r.Reason); err != nil {
		return store.Revision{}, err
	}
	r.At = timeOf(at)
	return r, nil
}
