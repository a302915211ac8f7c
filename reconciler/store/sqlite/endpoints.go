package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/patchline/patchline/reconciler/state"
	"github.com/patchline/patchline/reconciler/store"
)

// Enroll records a new endpoint and an enroll audit entry. An id already
// enrolled is store.ErrConflict.
func (db *DB) Enroll(ctx context.Context, e store.Enrollment) error {
	if e.ID == "" || e.Client == "" {
		return fmt.Errorf("enroll endpoint %q of client %q: id and client are required: %w", e.ID, e.Client, store.ErrInvalid)
	}
	if len(e.NodeKeyHash) == 0 || e.EnrolledAt.IsZero() {
		return fmt.Errorf("enroll endpoint %q: node key hash and enrollment time are required: %w", e.ID, store.ErrInvalid)
	}
	err := db.update(ctx, func(tx *wtx) error {
		res, err := tx.exec(enrollQuery, e.ID, e.Client, e.Hostname, e.NodeKeyHash, timeArg(e.EnrolledAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("already enrolled: %w", store.ErrConflict)
		}
		detail, err := json.Marshal(struct {
			Hostname string `json:"hostname"`
		}{e.Hostname})
		if err != nil {
			return err
		}
		return appendAudit(tx, store.AuditEntry{
			At: e.EnrolledAt, Kind: store.AuditEnroll, Client: e.Client, Endpoint: e.ID, Detail: detail,
		})
	})
	if err != nil {
		return fmt.Errorf("enroll endpoint %q: %w", e.ID, err)
	}
	return nil
}

var (
	enrollQuery = writeQuery(`INSERT INTO endpoints (id, client, hostname, node_key_hash, enrolled_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`)
	// endpointQuery runs on every agent request, to check its node key.
	endpointQuery = readQuery(`SELECT client, hostname, node_key_hash, enrolled_at FROM endpoints WHERE id = ?`)
)

// EndpointByID returns an endpoint's enrollment, or store.ErrNotFound.
func (db *DB) EndpointByID(ctx context.Context, id string) (store.Enrollment, error) {
	e := store.Enrollment{ID: id}
	var enrolled sql.NullInt64
	err := db.stmts.lookup(db.read, endpointQuery).QueryRowContext(ctx, id).
		Scan(&e.Client, &e.Hostname, &e.NodeKeyHash, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, err)
	}
	e.EnrolledAt = timeOf(enrolled)
	return e, nil
}

// ReplaceInventory stores an endpoint's report in place of its previous one,
// in one transaction. The endpoint's hostname, OS, labels, reboot flag and
// LastSeen (the report's At) are replaced, and its updates become exactly the
// reported ones. The store keeps its own history: an update reported
// installed keeps the InstalledAt it already had (or gets the report's time
// when it is newly installed), and recorded attempts are untouched. An
// update reported not installed loses its InstalledAt.
//
// A report older than the stored one, by its agent's sequence number or by
// its time, is store.ErrConflict (a late copy of an old report must not undo
// a newer one); a report with the same number and time is stored again, so
// a retried report is harmless.
func (db *DB) ReplaceInventory(ctx context.Context, r store.Report) error {
	if r.At.IsZero() {
		return fmt.Errorf("inventory of endpoint %q: report time is required: %w", r.Endpoint, store.ErrInvalid)
	}
	seenIDs := make(map[string]bool, len(r.Updates))
	for i, u := range r.Updates {
		if u == nil || u.ID == "" {
			return fmt.Errorf("inventory of endpoint %q: update %d has no id: %w", r.Endpoint, i, store.ErrInvalid)
		}
		if seenIDs[u.ID] {
			return fmt.Errorf("inventory of endpoint %q: update %q reported twice: %w", r.Endpoint, u.ID, store.ErrInvalid)
		}
		seenIDs[u.ID] = true
	}
	labels, err := json.Marshal(r.Labels)
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: labels: %w", r.Endpoint, err)
	}
	labelsArg := any(string(labels))
	if len(r.Labels) == 0 {
		labelsArg = nil
	}

	// A report is level-based: the agent sends the whole inventory again,
	// so it may skip waiting for the disk (see updateLazy).
	err = db.updateLazy(ctx, func(tx *wtx) error { return replaceInventory(tx, r, labelsArg) })
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: %w", r.Endpoint, err)
	}
	return nil
}

// The statements of an inventory report.
var (
	getSeenQuery     = writeQuery(`SELECT last_seen, report_seq FROM endpoints WHERE id = ?`)
	updEndpointQuery = writeQuery(`UPDATE endpoints SET hostname = ?, os_family = ?, os_version = ?, labels = ?,
		last_seen = ?, reboot_pending = ?, report_seq = ? WHERE id = ?`)
	selInstalledQuery = writeQuery(`SELECT id, installed_at FROM updates WHERE endpoint = ? AND installed_at IS NOT NULL`)
	delUpdatesQuery   = writeQuery(`DELETE FROM updates WHERE endpoint = ?`)
	insUpdateQuery    = writeQuery(`INSERT INTO updates (endpoint, id, source, name, title, version, installed_version,
		category, severity, cvss, cves, known_exploited, released, reboot_required, requires, installed, installed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
)

// replaceInventory is ReplaceInventory inside tx, with labels already
// encoded.
func replaceInventory(tx *wtx, r store.Report, labels any) error {
	var (
		lastSeen sql.NullInt64
		seq      int64
	)
	err := tx.queryRow(getSeenQuery, r.Endpoint).Scan(&lastSeen, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if r.Seq < seq {
		return fmt.Errorf("report %d is older than the stored report %d: %w", r.Seq, seq, store.ErrConflict)
	}
	if lastSeen.Valid && r.At.UnixNano() < lastSeen.Int64 {
		return fmt.Errorf("report of %s is older than the stored one of %s: %w",
			r.At.UTC().Format(timeLayout), timeOf(lastSeen).Format(timeLayout), store.ErrConflict)
	}
	if _, err := tx.exec(updEndpointQuery,
		r.Hostname, r.OS.Family, r.OS.Version, labels, r.At.UnixNano(), boolArg(r.RebootPending), r.Seq, r.Endpoint); err != nil {
		return err
	}

	// Keep installed_at of updates still reported installed.
	installedAt := map[string]int64{}
	rows, err := tx.query(selInstalledQuery, r.Endpoint)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return err
		}
		installedAt[id] = at
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if _, err := tx.exec(delUpdatesQuery, r.Endpoint); err != nil {
		return err
	}
	if len(r.Updates) == 0 {
		return nil
	}
	for _, u := range r.Updates {
		cves, err := jsonArg(u.CVEs)
		if err != nil {
			return fmt.Errorf("update %q: cves: %w", u.ID, err)
		}
		requires, err := jsonArg(u.Requires)
		if err != nil {
			return fmt.Errorf("update %q: requires: %w", u.ID, err)
		}
		var at any
		if u.Installed {
			if prev, ok := installedAt[u.ID]; ok {
				at = prev
			} else {
				at = r.At.UnixNano()
			}
		}
		if _, err := tx.exec(insUpdateQuery, r.Endpoint, u.ID, u.Source, u.Name, u.Title, u.Version, u.InstalledVersion,
			u.Category, u.Severity, u.CVSS, cves, boolArg(u.KnownExploited), timeArg(u.Released),
			boolArg(u.RebootRequired), requires, boolArg(u.Installed), at); err != nil {
			return fmt.Errorf("update %q: %w", u.ID, err)
		}
	}
	return nil
}

// timeLayout formats times in error messages.
const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// scanUpdate reads one row of updateColumns.
func scanUpdate(rows *sql.Rows, endpoint *string) (*state.Update, error) {
	u := &state.Update{}
	var cves, requires sql.NullString
	var released, installedAt sql.NullInt64
	var known, reboot, installed int
	if err := rows.Scan(endpoint, &u.ID, &u.Source, &u.Name, &u.Title, &u.Version, &u.InstalledVersion,
		&u.Category, &u.Severity, &u.CVSS, &cves, &known, &released, &reboot, &requires, &installed, &installedAt); err != nil {
		return nil, err
	}
	var err error
	if u.CVEs, err = jsonList[string](cves); err != nil {
		return nil, fmt.Errorf("update %q: cves: %w", u.ID, err)
	}
	if u.Requires, err = jsonList[string](requires); err != nil {
		return nil, fmt.Errorf("update %q: requires: %w", u.ID, err)
	}
	u.KnownExploited = known != 0
	u.RebootRequired = reboot != 0
	u.Installed = installed != 0
	u.Released = timeOf(released)
	if installedAt.Valid {
		t := timeOf(installedAt)
		u.InstalledAt = &t
	}
	return u, nil
}

// updateColumns are the columns scanUpdate reads, prefixed with the table
// alias u.
const updateColumns = `u.endpoint, u.id, u.source, u.name, u.title, u.version, u.installed_version,
	u.category, u.severity, u.cvss, u.cves, u.known_exploited, u.released, u.reboot_required, u.requires,
	u.installed, u.installed_at`
