package sqlite

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Halts returns the rollouts halted right now, by client, as RecordHalts
// last stored them, each client's sorted by ring and update.
func (db *DB) Halts(ctx context.Context) (map[string][]protocol.Halt, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT client, ring, update_id, reason FROM halts ORDER BY client, ring, update_id`)
	if err != nil {
		return nil, fmt.Errorf("halts: %w", err)
	}
	defer rows.Close()
	out := make(map[string][]protocol.Halt)
	for rows.Next() {
		var client string
		var h protocol.Halt
		if err := rows.Scan(&client, &h.Ring, &h.Update, &h.Reason); err != nil {
			return nil, fmt.Errorf("halts: %w", err)
		}
		out[client] = append(out[client], h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("halts: %w", err)
	}
	return out, nil
}

var (
	haltsOfClientQuery = writeQuery(`SELECT ring, update_id, reason FROM halts WHERE client = ?`)
	insertHaltQuery    = writeQuery(`INSERT INTO halts (client, ring, update_id, reason, revision, at) VALUES (?, ?, ?, ?, ?, ?)`)
	deleteHaltQuery    = writeQuery(`DELETE FROM halts WHERE client = ? AND ring = ? AND update_id = ?`)
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
	err := db.update(ctx, func(tx *wtx) error {
		changed = 0
		rows, err := tx.query(haltsOfClientQuery, client)
		if err != nil {
			return err
		}
		stored := make(map[key]protocol.Halt)
		for rows.Next() {
			var h protocol.Halt
			if err := rows.Scan(&h.Ring, &h.Update, &h.Reason); err != nil {
				rows.Close()
				return err
			}
			stored[key{h.Ring, h.Update}] = h
		}
		if err := rows.Close(); err != nil {
			return err
		}
		entry := func(kind protocol.AuditKind, h protocol.Halt) error {
			detail, err := json.Marshal(h)
			if err != nil {
				return err
			}
			changed++
			return appendAudit(tx, protocol.AuditEntry{At: at, Kind: kind, Client: client, Revision: revision, Detail: detail})
		}
		// In the order given, so the audit log reads like the status.
		for _, h := range halted {
			k := key{h.Ring, h.Update}
			if _, ok := stored[k]; ok {
				continue
			}
			stored[k] = h
			if _, err := tx.exec(insertHaltQuery, client, h.Ring, h.Update, h.Reason, revision, timeArg(at)); err != nil {
				return fmt.Errorf("halt %s in %s: %w", h.Update, h.Ring, err)
			}
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
			if _, err := tx.exec(deleteHaltQuery, client, h.Ring, h.Update); err != nil {
				return fmt.Errorf("resume %s in %s: %w", h.Update, h.Ring, err)
			}
			if err := entry(protocol.AuditResume, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("record halts of client %q: %w", client, err)
	}
	return changed, nil
}
