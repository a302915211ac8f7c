package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/reconciler/store"
)

// The leader lease: one replica at a time follows the fleet repo and
// plans (the controller's leader). It holds the row of the leader table
// (migration 0004) until expires_at, by the database's clock, so the
// replicas' clocks play no part, and renews it well before then. Another
// replica takes the row over only once it has expired. Each change of
// hands raises token, the fencing token: the leader's writes that only a
// leader may make (CreateJobs, ExpireJobs, RecordRevisions, RecordHalts)
// check, inside their transaction, that the row still holds the token
// this store was given (SetFence), and fail with ErrFenced otherwise. So a
// replica that lost the lease without noticing (its process paused, its
// network cut off) can never write after another took over: the check
// takes a share lock on the row, so the takeover waits for a write that
// checked before it, and a write that checks after it finds the new
// token.

// acquireLeaseQuery takes the lease for ($1 holder, $2 instance) for $3
// milliseconds: creates the row, renews the instance's own lease, or
// takes over an expired one, raising the token unless the instance renews
// a lease it still holds. It returns no row when another instance holds
// the lease.
const acquireLeaseQuery = `INSERT INTO leader AS l (holder, instance, token, expires_at)
	VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
	ON CONFLICT (one) DO UPDATE SET holder = $1, instance = $2,
		token = CASE WHEN l.instance = $2 AND l.expires_at > now() THEN l.token ELSE l.token + 1 END,
		expires_at = now() + $3 * interval '1 millisecond'
	WHERE l.instance = $2 OR l.expires_at <= now()
	RETURNING token`

// fenceQuery reads the token under a share lock held until the write
// commits (see above).
const fenceQuery = `SELECT token FROM leader WHERE one FOR SHARE`

// ErrFenced is the error of a leader-only write by a store whose fencing
// token is no longer the lease's: another replica took the lease over (or
// this one never held it). It is store.ErrConflict; the controller gives
// up leadership on it at once.
var ErrFenced = fmt.Errorf("this replica does not hold the leader lease (another replica took it over): %w", store.ErrConflict)

// Lease is the leader lease as the database holds it.
type Lease struct {
	// Holder is the leading replica's name ("" when no replica ever led).
	Holder string
	// Token is the fencing token of the holder's term.
	Token int64
	// Expires is when the lease ends unless renewed; Live says whether
	// it has not ended yet, by the database's clock.
	Expires time.Time
	Live    bool
}

// AcquireLease takes or renews the leader lease for ttl, as the replica
// named holder in its run instance (unique per process), and returns the
// lease's fencing token, or 0 when another instance holds an unexpired
// lease.
func (db *DB) AcquireLease(ctx context.Context, holder, instance string, ttl time.Duration) (int64, error) {
	if holder == "" || instance == "" || ttl <= 0 {
		return 0, fmt.Errorf("acquire leader lease: holder, instance and a positive ttl are required: %w", store.ErrInvalid)
	}
	var token int64
	err := db.pool.QueryRow(ctx, acquireLeaseQuery, holder, instance, ttl.Milliseconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("acquire leader lease: %w", err)
	}
	return token, nil
}

// ReleaseLease ends the lease instance holds, if it holds it, so another
// replica takes over at once rather than when it expires (a clean
// shutdown).
func (db *DB) ReleaseLease(ctx context.Context, instance string) error {
	if _, err := db.pool.Exec(ctx, `UPDATE leader SET expires_at = now() WHERE instance = $1 AND expires_at > now()`, instance); err != nil {
		return fmt.Errorf("release leader lease: %w", err)
	}
	return nil
}

// Leader returns the lease as the database holds it; the zero Lease when
// no replica ever led.
func (db *DB) Leader(ctx context.Context) (Lease, error) {
	var l Lease
	err := db.pool.QueryRow(ctx, `SELECT holder, token, expires_at, expires_at > now() FROM leader WHERE one`).Scan(&l.Holder, &l.Token, &l.Expires, &l.Live)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, nil
	}
	if err != nil {
		return Lease{}, fmt.Errorf("read leader lease: %w", err)
	}
	return l, nil
}

// EnableFencing makes the leader-only writes check the fencing token
// (SetFence) from now on; until SetFence gives one, they fail with
// ErrFenced. A store opened without it (tests, patchctl store migrate)
// writes unchecked.
func (db *DB) EnableFencing() { db.fencing.Store(true) }

// SetFence sets the fencing token the leader-only writes check against:
// the token AcquireLease returned, or 0 once the lease is lost.
func (db *DB) SetFence(token int64) { db.fence.Store(token) }

// checkFence fails with ErrFenced, inside t, when fencing is on and the
// lease does not hold this store's token; it returns the token (0 when
// fencing is off), which CreateJobs writes on each job.
func (db *DB) checkFence(t *wtx) (int64, error) {
	if !db.fencing.Load() {
		return 0, nil
	}
	mine := db.fence.Load()
	if mine == 0 {
		db.fencedWrites.Add(1)
		return 0, ErrFenced
	}
	var token int64
	err := t.queryRow(fenceQuery).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && token != mine) {
		db.fencedWrites.Add(1)
		return 0, ErrFenced
	}
	if err != nil {
		return 0, fmt.Errorf("check the leader lease: %w", err)
	}
	return mine, nil
}

// FencedWrites counts the leader-only writes refused with ErrFenced since
// the store opened.
func (db *DB) FencedWrites() int64 { return db.fencedWrites.Load() }
