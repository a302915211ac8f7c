package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Halts returns the rollouts halted right now, by client, as RecordHalts
// last stored them, each client's sorted by ring and update.
func (db *DB) Halts(ctx context.Context) (map[string][]protocol.Halt, error) {
	rows, err := db.pool.Query(ctx, `SELECT client, ring, update_id, reason FROM halts ORDER BY client, ring, update_id`)
	if err != nil {
		return nil, fmt.Errorf("halts: %w", classify(err))
	}
	defer rows.Close()
	out := make(map[string][]protocol.Halt)
	for rows.Next() {
		var client string
		var h protocol.Halt
		if err := rows.Scan(&client, &h.Ring, &h.Update, &h.Reason); err != nil {
			return nil, fmt.Errorf("halts: %w", classify(err))
		}
		out[client] = append(out[client], h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("halts: %w", classify(err))
	}
	return out, nil
}

// haltsLockClass is the first key of the transaction-scoped advisory lock
// (pg_advisory_xact_lock(int, int), whose keys never meet the one-key
// locks of migrate.go and audit.go) under which RecordHalts reads and
// changes one client's halts; the second key is the hash of the client's
// id. Two writers recording the same client's halts at once take turns,
// so a halt is inserted and audited once. The number is "halt" in ASCII.
const haltsLockClass int32 = 0x68616c74

const (
	lockHaltsQuery     = `SELECT pg_advisory_xact_lock($1, hashtext($2))`
	haltsOfClientQuery = `SELECT ring, update_id, reason FROM halts WHERE client = $1`
	insertHaltQuery    = `INSERT INTO halts (client, ring, update_id, reason, revision, at) VALUES ($1, $2, $3, $4, $5, $6)`
	deleteHaltQuery    = `DELETE FROM halts WHERE client = $1 AND ring = $2 AND update_id = $3`
)

// RecordHalts makes halted the client's halted rollouts, in one
// transaction with their audit entries: a halt entry for each rollout
// halted that was not, a resume entry (with the halt as it was recorded)
// for each that no longer is. A halt is known by its ring and update; its
// reason changing is no new halt. It returns how many entries it
// appended: none when halted is what is stored, as after a restart.
func (db *DB) RecordHalts(ctx context.Context, client, revision string, halted []protocol.Halt, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, fmt.Errorf("record halts of client %q: time is required: %w", client, store.ErrInvalid)
	}
	type key struct{ ring, update string }
	want := make(map[key]protocol.Halt, len(halted))
	for _, h := range halted {
		want[key{h.Ring, h.Update}] = h
	}
	changed := 0
	err := db.update(ctx, func(t *wtx) error {
		changed = 0
		if _, err := db.checkFence(t); err != nil {
			return err
		}
		stored := make(map[key]protocol.Halt)
		b := &pgx.Batch{}
		b.Queue(lockHaltsQuery, haltsLockClass, client)
		b.Queue(haltsOfClientQuery, client).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var h protocol.Halt
				if err := rows.Scan(&h.Ring, &h.Update, &h.Reason); err != nil {
					return err
				}
				stored[key{h.Ring, h.Update}] = h
			}
			return rows.Err()
		})
		if err := t.send(b); err != nil {
			return err
		}
		entry := func(kind protocol.AuditKind, h protocol.Halt) error {
			detail, err := json.Marshal(h)
			if err != nil {
				return err
			}
			changed++
			t.appendAudit(protocol.AuditEntry{At: at, Kind: kind, Client: client, Revision: revision, Detail: detail})
			return nil
		}
		b = &pgx.Batch{}
		// In the order given, so the audit log reads like the status.
		for _, h := range halted {
			k := key{h.Ring, h.Update}
			if _, ok := stored[k]; ok {
				continue
			}
			stored[k] = h
			b.Queue(insertHaltQuery, client, h.Ring, h.Update, h.Reason, revision, at.UnixNano())
			if err := entry(protocol.AuditHalt, h); err != nil {
				return err
			}
		}
		var gone []protocol.Halt
		for k, h := range stored {
			if _, ok := want[k]; !ok {
				gone = append(gone, h)
			}
		}
		slices.SortFunc(gone, func(a, b protocol.Halt) int {
			return cmp.Or(strings.Compare(a.Ring, b.Ring), strings.Compare(a.Update, b.Update))
		})
		for _, h := range gone {
			b.Queue(deleteHaltQuery, client, h.Ring, h.Update)
			if err := entry(protocol.AuditResume, h); err != nil {
				return err
			}
		}
		if b.Len() == 0 {
			return nil
		}
		return t.send(b)
	})
	if err != nil {
		return 0, fmt.Errorf("record halts of client %q: %w", client, err)
	}
	return changed, nil
}
