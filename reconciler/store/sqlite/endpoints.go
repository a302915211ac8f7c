package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

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
// a retried report is harmless. A revoked endpoint's report is
// store.ErrConflict.
//
// The report's JobSeq raises the endpoint's job numbers only when it is
// the first report since the endpoint enrolled or the store was restored
// from a backup (Restore); otherwise it is ignored, so an endpoint cannot
// move its own numbers.
func (db *DB) ReplaceInventory(ctx context.Context, r store.Report) error {
	inv, err := newInventory(r)
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: %w", r.Endpoint, err)
	}
	// A report is level-based: the agent sends the whole inventory again,
	// so it may skip waiting for the disk (see updateLazy).
	err = db.updateLazy(ctx, func(tx *wtx) error { return replaceInventory(tx, inv) })
	if errors.Is(err, errDuplicateReport) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: %w", r.Endpoint, err)
	}
	return nil
}

// inventory is a report checked and encoded for the store, ready for
// replaceInventory. The encoding happens before the write transaction, so
// the one writer does not wait for it.
type inventory struct {
	r      store.Report
	labels any
	// rows are the columns of r.Updates, in the same order, with
	// installedAt left for replaceInventory (it depends on what is
	// stored).
	rows []updateRow
}

func newInventory(r store.Report) (inventory, error) {
	if r.At.IsZero() {
		return inventory{}, fmt.Errorf("report time is required: %w", store.ErrInvalid)
	}
	inv := inventory{r: r, rows: make([]updateRow, len(r.Updates))}
	seen := make(map[string]bool, len(r.Updates))
	for i, u := range r.Updates {
		if u == nil || u.ID == "" {
			return inventory{}, fmt.Errorf("update %d has no id: %w", i, store.ErrInvalid)
		}
		if seen[u.ID] {
			return inventory{}, fmt.Errorf("update %q reported twice: %w", u.ID, store.ErrInvalid)
		}
		seen[u.ID] = true
		row, err := reportedRow(u)
		if err != nil {
			return inventory{}, fmt.Errorf("update %q: %w", u.ID, err)
		}
		inv.rows[i] = row
	}
	if len(r.Labels) > 0 {
		labels, err := json.Marshal(r.Labels)
		if err != nil {
			return inventory{}, fmt.Errorf("labels: %w", err)
		}
		inv.labels = string(labels)
	}
	return inv, nil
}

// updateRow is an update's columns in the updates table, but for its
// endpoint and id. Rows compare with ==.
type updateRow struct {
	source, name, title, version, installedVersion, category, severity string
	cvss                                                               float64
	cves, requires                                                     sql.NullString
	knownExploited, rebootRequired, installed                          int
	released, installedAt                                              sql.NullInt64
	releasedFrom, sourcePackage, urgency                               string
}

// reportedRow is u's row, without installedAt.
func reportedRow(u *protocol.Update) (updateRow, error) {
	row := updateRow{
		source: u.Source, name: u.Name, title: u.Title, version: u.Version, installedVersion: u.InstalledVersion,
		category: u.Category, severity: u.Severity, cvss: u.CVSS,
		knownExploited: boolArg(u.KnownExploited), rebootRequired: boolArg(u.RebootRequired), installed: boolArg(u.Installed),
		sourcePackage: u.SourcePackage, urgency: u.Urgency,
	}
	// Whatever the agent says of ReleasedFrom and Intel is ignored: a date
	// it gives is the vendor's, the store supplies the rest (writeUpdates),
	// and Intel is the controller's, from its feeds, never stored.
	if !u.Released.IsZero() {
		row.released = sql.NullInt64{Int64: u.Released.UnixNano(), Valid: true}
		row.releasedFrom = protocol.ReleasedByVendor
	}
	var err error
	if row.cves, err = jsonText(u.CVEs); err != nil {
		return updateRow{}, fmt.Errorf("cves: %w", err)
	}
	if row.requires, err = jsonText(u.Requires); err != nil {
		return updateRow{}, fmt.Errorf("requires: %w", err)
	}
	return row, nil
}

// jsonText is jsonArg as a column value.
func jsonText[T any](v []T) (sql.NullString, error) {
	a, err := jsonArg(v)
	if err != nil || a == nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: a.(string), Valid: true}, nil
}

// The statements of an inventory report.
var (
	getSeenQuery = writeQuery(`SELECT last_seen, report_seq, revoked_at IS NOT NULL FROM endpoints WHERE id = ?`)
	// The report's job number counts only while the store cannot know
	// it (job_seq_unknown, see migrations/0004).
	updEndpointQuery = writeQuery(`UPDATE endpoints SET hostname = ?, os_family = ?, os_version = ?, labels = ?,
		last_seen = ?, reboot_pending = ?, reboot_state = ?, report_seq = ?, agent_version = ?,
		job_seq = CASE WHEN job_seq_unknown = 1 THEN max(job_seq, ?) ELSE job_seq END, job_seq_unknown = 0
		WHERE id = ?`)
	selUpdatesQuery = writeQuery(`SELECT id, source, name, title, version, installed_version, category, severity,
		cvss, cves, known_exploited, released, reboot_required, requires, installed, installed_at,
		released_from, source_package, urgency
		FROM updates WHERE endpoint = ?`)
	delUpdateQuery = writeQuery(`DELETE FROM updates WHERE endpoint = ? AND id = ?`)
	insUpdateQuery = writeQuery(`INSERT INTO updates (source, name, title, version, installed_version,
		category, severity, cvss, cves, known_exploited, released, reboot_required, requires, installed, installed_at,
		released_from, source_package, urgency, endpoint, id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	setUpdateQuery = writeQuery(`UPDATE updates SET source = ?, name = ?, title = ?, version = ?, installed_version = ?,
		category = ?, severity = ?, cvss = ?, cves = ?, known_exploited = ?, released = ?, reboot_required = ?,
		requires = ?, installed = ?, installed_at = ?, released_from = ?, source_package = ?, urgency = ?
		WHERE endpoint = ? AND id = ?`)
	getFirstSeenQuery = writeQuery(`SELECT at FROM first_seen WHERE source = ? AND id = ?`)
	insFirstSeenQuery = writeQuery(`INSERT INTO first_seen (source, id, at) VALUES (?, ?, ?)`)
)

// replaceInventory is ReplaceInventory inside tx. It writes only what
// changed: most reports repeat the stored inventory, and reading a row
// costs SQLite much less than deleting and inserting it again.
func replaceInventory(tx *wtx, inv inventory) error {
	if err := updateEndpoint(tx, inv); err != nil {
		return err
	}
	stored, err := storedUpdates(tx, inv.r.Endpoint)
	if err != nil {
		return err
	}
	if err := writeUpdates(tx, inv, stored); err != nil {
		return err
	}
	// What the report no longer lists is gone from the endpoint.
	for id := range stored {
		if _, err := tx.exec(delUpdateQuery, inv.r.Endpoint, id); err != nil {
			return fmt.Errorf("update %q: %w", id, err)
		}
	}
	return nil
}

// errDuplicateReport is a report numbered as the stored one: a copy of it
// (the agent's retry of a report whose answer was lost, or the network
// delivering it twice), which changes nothing. Applying it again could
// undo what a job recorded since (an update installed would read as
// missing until the next report).
var errDuplicateReport = errors.New("duplicate report")

// updateEndpoint refuses a report older than the stored one (by sequence
// number or by time) and otherwise replaces the endpoint's own columns
// with the report's. An endpoint not enrolled is store.ErrNotFound, a
// revoked one store.ErrConflict.
func updateEndpoint(tx *wtx, inv inventory) error {
	r := inv.r
	var (
		lastSeen sql.NullInt64
		seq      int64
		revoked  bool
	)
	err := tx.queryRow(getSeenQuery, r.Endpoint).Scan(&lastSeen, &seq, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if revoked {
		return fmt.Errorf("endpoint is revoked: %w", store.ErrConflict)
	}
	if r.Seq < seq {
		return fmt.Errorf("report %d is older than the stored report %d: %w", r.Seq, seq, store.ErrConflict)
	}
	if r.Seq > 0 && r.Seq == seq {
		return errDuplicateReport
	}
	if lastSeen.Valid && r.At.UnixNano() < lastSeen.Int64 {
		return fmt.Errorf("report of %s is older than the stored one of %s: %w",
			r.At.UTC().Format(timeLayout), timeOf(lastSeen).Format(timeLayout), store.ErrConflict)
	}
	reboot, err := rebootState(r.Reboot)
	if err != nil {
		return err
	}
	_, err = tx.exec(updEndpointQuery,
		r.Hostname, r.OS.Family, r.OS.Version, inv.labels, r.At.UnixNano(), boolArg(r.RebootPending), reboot, r.Seq, r.AgentVersion, r.JobSeq, r.Endpoint)
	return err
}

// rebootState is the reboot_state column of a report's reboot state:
// its JSON, NULL for none.
func rebootState(r *protocol.RebootState) (sql.NullString, error) {
	if r == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("reboot state: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// storedUpdates reads the stored rows of endpoint's updates, by update id.
func storedUpdates(tx *wtx, endpoint string) (map[string]updateRow, error) {
	stored := map[string]updateRow{}
	rows, err := tx.query(selUpdatesQuery, endpoint)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var row updateRow
		if err := rows.Scan(&id, &row.source, &row.name, &row.title, &row.version, &row.installedVersion,
			&row.category, &row.severity, &row.cvss, &row.cves, &row.knownExploited, &row.released,
			&row.rebootRequired, &row.requires, &row.installed, &row.installedAt,
			&row.releasedFrom, &row.sourcePackage, &row.urgency); err != nil {
			rows.Close()
			return nil, err
		}
		stored[id] = row
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	return stored, nil
}

// writeUpdates inserts each reported update that is not stored and
// rewrites each whose row changed, leaving equal rows alone. It deletes
// every reported update from stored, so what stays there is what the
// report no longer lists.
func writeUpdates(tx *wtx, inv inventory, stored map[string]updateRow) error {
	r := inv.r
	for i, u := range r.Updates {
		row := inv.rows[i]
		prev, had := stored[u.ID]
		delete(stored, u.ID)
		// An update reported installed keeps the time it was first seen
		// installed, which is known only when the controller saw it
		// missing before: one installed before the endpoint first reported
		// it (onboarding) has no install time, so it is neither an install
		// of that month nor a late one. One reported not installed has none.
		if row.installed != 0 {
			row.installedAt = prev.installedAt
			if had && prev.installed == 0 && !prev.installedAt.Valid {
				row.installedAt = sql.NullInt64{Int64: r.At.UnixNano(), Valid: true}
			}
		}
		if !row.released.Valid {
			var err error
			if row.released, err = firstSeen(tx, u, prev, had, r.At); err != nil {
				return fmt.Errorf("update %q: first seen: %w", u.ID, err)
			}
			row.releasedFrom = protocol.ReleasedFirstSeen
		}
		q := insUpdateQuery
		if had {
			if row == prev {
				continue
			}
			q = setUpdateQuery
		}
		// Both statements take the same arguments in the same order.
		if _, err := tx.exec(q, row.source, row.name, row.title, row.version, row.installedVersion, row.category,
			row.severity, row.cvss, row.cves, row.knownExploited, row.released, row.rebootRequired, row.requires,
			row.installed, row.installedAt, row.releasedFrom, row.sourcePackage, row.urgency, r.Endpoint, u.ID); err != nil {
			return fmt.Errorf("update %q: %w", u.ID, err)
		}
	}
	return nil
}

// firstSeen is the release time of an update whose source gives none: when
// the fleet first saw it (by source and id), recorded at its first report
// on any endpoint. A stored row already carries it, so a repeated report
// costs no lookup.
func firstSeen(tx *wtx, u *protocol.Update, prev updateRow, had bool, at time.Time) (sql.NullInt64, error) {
	if had && prev.releasedFrom == protocol.ReleasedFirstSeen && prev.source == u.Source && prev.released.Valid {
		return prev.released, nil
	}
	var t int64
	err := tx.queryRow(getFirstSeenQuery, u.Source, u.ID).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		t = at.UnixNano()
		_, err = tx.exec(insFirstSeenQuery, u.Source, u.ID, t)
	}
	if err != nil {
		return sql.NullInt64{}, err
	}
	return sql.NullInt64{Int64: t, Valid: true}, nil
}

// timeLayout formats times in error messages.
const timeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// scanUpdate reads one row of updateColumns.
func scanUpdate(rows *sql.Rows, endpoint *string) (*protocol.Update, error) {
	u := &protocol.Update{}
	var cves, requires sql.NullString
	var released, installedAt sql.NullInt64
	var known, reboot, installed int
	if err := rows.Scan(endpoint, &u.ID, &u.Source, &u.Name, &u.Title, &u.Version, &u.InstalledVersion,
		&u.Category, &u.Severity, &u.CVSS, &cves, &known, &released, &reboot, &requires, &installed, &installedAt,
		&u.ReleasedFrom, &u.SourcePackage, &u.Urgency); err != nil {
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
	u.installed, u.installed_at, u.released_from, u.source_package, u.urgency`
