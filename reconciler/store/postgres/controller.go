package postgres

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/reconciler/store"
)

// RecordSigningKey records pub as the public half of the job-signing key
// every patchd on this database signs with, unless a key is recorded
// already, and returns the key recorded and when it was. The first patchd
// to start records its key; the caller compares what comes back with its
// own and refuses to start on a difference (agents pin the key).
func (db *DB) RecordSigningKey(ctx context.Context, pub ed25519.PublicKey, at time.Time) (ed25519.PublicKey, time.Time, error) {
	if len(pub) != ed25519.PublicKeySize || at.IsZero() {
		return nil, time.Time{}, fmt.Errorf("record job-signing key: an ed25519 public key and a time are required: %w", store.ErrInvalid)
	}
	var recorded []byte
	var created int64
	err := db.update(ctx, func(t *wtx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO controller (signing_key, created) VALUES ($1, $2) ON CONFLICT DO NOTHING`, []byte(pub), at.UnixNano())
		b.Queue(`SELECT signing_key, created FROM controller`).QueryRow(func(row pgx.Row) error {
			return row.Scan(&recorded, &created)
		})
		return t.send(b)
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("record job-signing key: %w", err)
	}
	return ed25519.PublicKey(recorded), time.Unix(0, created).UTC(), nil
}
