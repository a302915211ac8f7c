package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Snapshot returns the reported state of every enrolled endpoint, as the
// planner and GET /v1/state see it; revoked endpoints are left out. Endpoints are sorted by id and each
// endpoint's updates by update id (byte order). An update's attempts are
// the recorded results for it, oldest first; its InFlightJob is the
// earliest open or leased job that includes it and whose not-after time
// is after now. An endpoint that never reported has a zero LastSeen and
// no updates.
func (db *DB) Snapshot(ctx context.Context, now time.Time) (*protocol.Snapshot, error) {
	eps, err := db.loadEndpoints(ctx, scope{}, now)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", classify(err))
	}
	return &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: eps}, nil
}

// ClientSnapshot is Snapshot for the endpoints of one client. A client
// without endpoints has an empty snapshot.
func (db *DB) ClientSnapshot(ctx context.Context, client string, now time.Time) (*protocol.Snapshot, error) {
	eps, err := db.loadEndpoints(ctx, scope{client: client}, now)
	if err != nil {
		return nil, fmt.Errorf("snapshot of client %q: %w", client, classify(err))
	}
	return &protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, GeneratedAt: now, Endpoints: eps}, nil
}

// EndpointSnapshot is Snapshot for one endpoint; its cost depends only on
// that endpoint. An unknown endpoint is store.ErrNotFound.
func (db *DB) EndpointSnapshot(ctx context.Context, id string, now time.Time) (*protocol.Endpoint, error) {
	eps, err := db.loadEndpoints(ctx, scope{endpoint: id}, now)
	if err != nil {
		return nil, fmt.Errorf("snapshot of endpoint %q: %w", id, classify(err))
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("snapshot of endpoint %q: %w", id, store.ErrNotFound)
	}
	return eps[0], nil
}

// scope selects the endpoints of a snapshot: all of them, one client's or
// one endpoint.
type scope struct {
	client, endpoint string
}

// where returns a condition on the endpoint id column col and its
// arguments ($1 when there is one); it is TRUE for the whole fleet.
func (s scope) where(col string) (string, []any) {
	switch {
	case s.endpoint != "":
		return col + " = $1", []any{s.endpoint}
	case s.client != "":
		return col + " IN (SELECT id FROM endpoints WHERE client = $1)", []any{s.client}
	default:
		return "TRUE", nil
	}
}

// The queries of a snapshot. Each reads only the rows in scope through an
// index and returns them in that index's order (byte order, the columns'
// collation).

func (s scope) endpointsQuery() (string, []any) {
	cond, args := s.where("id")
	if s.client != "" {
		cond, args = "client = $1", []any{s.client}
	}
	// A revoked endpoint is in no snapshot: it is planned nothing and
	// counts in no figure (its updates, attempts and jobs, read by the
	// other queries, find no endpoint and are left out).
	return `SELECT id, client, hostname, os_family, os_version, labels, last_seen, reboot_pending, agent_version, reboot_state
		FROM endpoints WHERE ` + cond + ` AND revoked_at IS NULL ORDER BY id`, args
}

// updatesQuery orders by the primary key, so each endpoint's updates come
// sorted by id, which store.FindUpdate relies on.
func (s scope) updatesQuery() (string, []any) {
	cond, args := s.where("u.endpoint")
	return `SELECT ` + updateColumns + ` FROM updates u WHERE ` + cond + ` ORDER BY u.endpoint, u.id`, args
}

func (s scope) attemptsQuery() (string, []any) {
	cond, args := s.where("endpoint")
	return `SELECT endpoint, update_id, at, result, error, job, ring, action FROM attempts
		WHERE ` + cond + ` ORDER BY endpoint, update_id, at, id`, args
}

func (s scope) inFlightQuery(now time.Time) (string, []any) {
	cond, args := s.where("endpoint")
	return `SELECT id, endpoint, updates FROM jobs
		WHERE ` + cond + ` AND state IN ('open', 'leased') AND not_after > $` + strconv.Itoa(len(args)+1) + `
		ORDER BY endpoint, seq`, append(args, now.UnixNano())
}

// loadEndpoints reads the endpoints in scope with their updates, attempts
// and in-flight jobs, all from one snapshot of the database so they agree.
func (db *DB) loadEndpoints(ctx context.Context, s scope, now time.Time) ([]*protocol.Endpoint, error) {
	eps := []*protocol.Endpoint{}
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		if eps, err = queryEndpoints(ctx, tx, s); err != nil {
			return fmt.Errorf("endpoints: %w", err)
		}
		if len(eps) == 0 {
			return nil
		}
		byID := make(map[string]*protocol.Endpoint, len(eps))
		for _, e := range eps {
			byID[e.ID] = e
		}
		if err := queryUpdates(ctx, tx, s, byID); err != nil {
			return fmt.Errorf("updates: %w", err)
		}
		if err := queryAttempts(ctx, tx, s, byID); err != nil {
			return fmt.Errorf("attempts: %w", err)
		}
		if err := queryInFlight(ctx, tx, s, byID, now); err != nil {
			return fmt.Errorf("in-flight jobs: %w", err)
		}
		return nil
	})
	return eps, err
}

func queryEndpoints(ctx context.Context, tx pgx.Tx, s scope) ([]*protocol.Endpoint, error) {
	q, args := s.endpointsQuery()
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	eps := []*protocol.Endpoint{}
	for rows.Next() {
		e := &protocol.Endpoint{Updates: []*protocol.Update{}}
		var lastSeen pgtype.Int8
		var state []byte
		if err := rows.Scan(&e.ID, &e.Client, &e.Hostname, &e.OS.Family, &e.OS.Version, &e.Labels, &lastSeen, &e.RebootPending, &e.AgentVersion, &state); err != nil {
			return nil, err
		}
		if state != nil {
			e.Reboot = new(protocol.RebootState)
			if err := json.Unmarshal(state, e.Reboot); err != nil {
				return nil, fmt.Errorf("endpoint %q: reboot state: %w", e.ID, err)
			}
		}
		e.LastSeen = timeOf(lastSeen)
		eps = append(eps, e)
	}
	return eps, rows.Err()
}

func queryUpdates(ctx context.Context, tx pgx.Tx, s scope, byID map[string]*protocol.Endpoint) error {
	q, args := s.updatesQuery()
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var endpoint string
	for rows.Next() {
		u, err := scanUpdate(rows, &endpoint)
		if err != nil {
			return err
		}
		if e := byID[endpoint]; e != nil {
			e.Updates = append(e.Updates, u)
		}
	}
	return rows.Err()
}

func queryAttempts(ctx context.Context, tx pgx.Tx, s scope, byID map[string]*protocol.Endpoint) error {
	q, args := s.attemptsQuery()
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var endpoint, update string
		var at int64
		var a protocol.Attempt
		var result string
		if err := rows.Scan(&endpoint, &update, &at, &result, &a.Error, &a.Job, &a.Ring, &a.Action); err != nil {
			return err
		}
		a.At = time.Unix(0, at).UTC()
		a.Result = protocol.Result(result)
		// Attempts of updates the endpoint no longer reports stay stored
		// but have no place in the snapshot.
		if e := byID[endpoint]; e != nil {
			if u := store.FindUpdate(e, update); u != nil {
				u.Attempts = append(u.Attempts, a)
			}
		}
	}
	return rows.Err()
}

func queryInFlight(ctx context.Context, tx pgx.Tx, s scope, byID map[string]*protocol.Endpoint, now time.Time) error {
	q, args := s.inFlightQuery(now)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, endpoint string
		var ids []string
		if err := rows.Scan(&id, &endpoint, &ids); err != nil {
			return err
		}
		e := byID[endpoint]
		if e == nil {
			continue
		}
		for _, uid := range ids {
			if u := store.FindUpdate(e, uid); u != nil && u.InFlightJob == nil {
				u.InFlightJob = &id
			}
		}
	}
	return rows.Err()
}
