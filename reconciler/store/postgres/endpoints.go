package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// Enroll records a new endpoint and an enroll audit entry. An id already
// enrolled is store.ErrConflict. With e.Token, the enrollment token is
// used in the same transaction: one that cannot enroll now is refused
// (an error wrapping its store.TokenRefusal) and nothing is stored; an
// unknown one is store.ErrNotFound.
func (db *DB) Enroll(ctx context.Context, e store.Enrollment) error {
	if e.ID == "" || e.Client == "" {
		return fmt.Errorf("enroll endpoint %q of client %q: id and client are required: %w", e.ID, e.Client, store.ErrInvalid)
	}
	if len(e.NodeKeyHash) == 0 || e.EnrolledAt.IsZero() {
		return fmt.Errorf("enroll endpoint %q: node key hash and enrollment time are required: %w", e.ID, store.ErrInvalid)
	}
	labels, err := labelsArg(e.Labels)
	if err != nil {
		return fmt.Errorf("enroll endpoint %q: %w", e.ID, err)
	}
	var token *int64
	if e.Token != 0 {
		token = &e.Token
	}
	err = db.update(ctx, func(t *wtx) error {
		var tokenName string
		if e.Token != 0 {
			tok, err := useEnrollToken(t, e.Token, e.Client, e.EnrolledAt)
			if err != nil {
				return err
			}
			tokenName = tok.Name
		}
		// A new endpoint's job numbers are unknown until its first report:
		// its agent may have seen some under an earlier enrollment. Its
		// labels, until it reports, are its enrollment labels.
		tag, err := t.exec(`INSERT INTO endpoints (id, client, hostname, node_key_hash, enrolled_at, job_seq_unknown, labels, enroll_labels, enroll_token)
			VALUES ($1, $2, $3, $4, $5, true, $6, $6, $7) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Client, e.Hostname, e.NodeKeyHash, e.EnrolledAt.UnixNano(), labels, token)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("already enrolled: %w", store.ErrConflict)
		}
		t.appendAudit(protocol.AuditEntry{
			At: e.EnrolledAt, Kind: protocol.AuditEnroll, Client: e.Client, Endpoint: e.ID, Detail: store.EnrollDetail(e.Hostname, tokenName),
		})
		return t.notify(NotifyEndpoint, e.ID)
	})
	if err != nil {
		return fmt.Errorf("enroll endpoint %q: %w", e.ID, err)
	}
	return nil
}

// EndpointByID returns an endpoint's enrollment, revoked or not, or
// store.ErrNotFound.
func (db *DB) EndpointByID(ctx context.Context, id string) (store.Enrollment, error) {
	e := store.Enrollment{ID: id}
	var enrolled, revoked, token pgtype.Int8
	err := db.pool.QueryRow(ctx, `SELECT client, hostname, node_key_hash, enrolled_at, revoked_at, revoked_by, enroll_labels, enroll_token
		FROM endpoints WHERE id = $1`, id).
		Scan(&e.Client, &e.Hostname, &e.NodeKeyHash, &enrolled, &revoked, &e.RevokedBy, &e.Labels, &token)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Enrollment{}, fmt.Errorf("endpoint %q: %w", id, classify(err))
	}
	e.EnrolledAt, e.RevokedAt = timeOf(enrolled), timeOf(revoked)
	e.Token = token.Int64
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
// a retried report is harmless. An endpoint never enrolled is
// store.ErrNotFound, a revoked one store.ErrConflict.
//
// The report's JobSeq raises the endpoint's job numbers only when it is
// the first report since the endpoint enrolled; otherwise it is ignored,
// so an endpoint cannot move its own numbers.
func (db *DB) ReplaceInventory(ctx context.Context, r store.Report) error {
	inv, err := newInventory(r)
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: %w", r.Endpoint, err)
	}
	err = db.updateLazy(ctx, func(t *wtx) error { return replaceInventory(t, inv) })
	if errors.Is(err, errDuplicateReport) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inventory of endpoint %q: %w", r.Endpoint, err)
	}
	return nil
}

// errDuplicateReport is a report numbered as the stored one: a copy of it
// (the agent's retry of a report whose answer was lost, or the network
// delivering it twice), which changes nothing. Applying it again could
// undo what a job recorded since.
var errDuplicateReport = errors.New("duplicate report")

// inventory is a report checked and encoded for the store, ready for
// replaceInventory.
type inventory struct {
	r      store.Report
	labels any
	// rows are the columns of r.Updates, in the same order, with
	// installedAt and (for an update its source does not date) released
	// left for replaceInventory: they depend on what is stored.
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
		inv.rows[i] = reportedRow(u)
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
// endpoint and id.
type updateRow struct {
	updateScalars
	cves, requires []string
}

// updateScalars are the columns of an update row that compare with ==.
type updateScalars struct {
	source, name, title, version, installedVersion, category, severity string
	cvss                                                               float64
	knownExploited, rebootRequired, installed                          bool
	released, installedAt                                              pgtype.Int8
	releasedFrom, sourcePackage, urgency                               string
}

func (r updateRow) equal(o updateRow) bool {
	return r.updateScalars == o.updateScalars && slices.Equal(r.cves, o.cves) && slices.Equal(r.requires, o.requires)
}

// reportedRow is u's row, without installedAt.
func reportedRow(u *protocol.Update) updateRow {
	row := updateRow{
		updateScalars: updateScalars{
			source: u.Source, name: u.Name, title: u.Title, version: u.Version, installedVersion: u.InstalledVersion,
			category: u.Category, severity: u.Severity, cvss: u.CVSS,
			knownExploited: u.KnownExploited, rebootRequired: u.RebootRequired, installed: u.Installed,
			sourcePackage: u.SourcePackage, urgency: u.Urgency,
		},
		cves: listArg(u.CVEs), requires: listArg(u.Requires),
	}
	// Whatever the agent says of ReleasedFrom and Intel is ignored: a date
	// it gives is the vendor's, the store supplies the rest (firstSeen),
	// and Intel is the controller's, from its feeds, never stored.
	if !u.Released.IsZero() {
		row.released = pgtype.Int8{Int64: u.Released.UnixNano(), Valid: true}
		row.releasedFrom = protocol.ReleasedByVendor
	}
	return row
}

// The statements of an inventory report.
const (
	// lockSeenQuery takes the endpoint lock (see the package
	// documentation): FOR NO KEY UPDATE, which rows referencing the
	// endpoint (a new job, an attempt) do not wait for.
	lockSeenQuery = `SELECT last_seen, report_seq, revoked_at IS NOT NULL FROM endpoints WHERE id = $1 FOR NO KEY UPDATE`
	// The report's job number counts only while the store cannot know
	// it (job_seq_unknown, see migrations/0002).
	updEndpointQuery = `UPDATE endpoints SET hostname = $1, os_family = $2, os_version = $3, labels = $4,
		last_seen = $5, reboot_pending = $6, report_seq = $7, agent_version = $10,
		job_seq = CASE WHEN job_seq_unknown THEN greatest(job_seq, $8) ELSE job_seq END, job_seq_unknown = false,
		reboot_state = $11
		WHERE id = $9`
	selUpdatesQuery = `SELECT id, source, name, title, version, installed_version, category, severity,
		cvss, cves, known_exploited, released, reboot_required, requires, installed, installed_at,
		released_from, source_package, urgency
		FROM updates WHERE endpoint = $1`
	delUpdatesQuery = `DELETE FROM updates WHERE endpoint = $1 AND id = ANY($2)`
	insUpdateQuery  = `INSERT INTO updates (source, name, title, version, installed_version,
		category, severity, cvss, cves, known_exploited, released, reboot_required, requires, installed, installed_at,
		released_from, source_package, urgency, endpoint, id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`
	setUpdateQuery = `UPDATE updates SET source = $1, name = $2, title = $3, version = $4, installed_version = $5,
		category = $6, severity = $7, cvss = $8, cves = $9, known_exploited = $10, released = $11, reboot_required = $12,
		requires = $13, installed = $14, installed_at = $15, released_from = $16, source_package = $17, urgency = $18
		WHERE endpoint = $19 AND id = $20`
	// insFirstSeenQuery records the updates the fleet sees for the first
	// time, in key order: two reports inserting the same keys take their
	// locks in the same order, so neither waits for the other in a cycle.
	insFirstSeenQuery = `INSERT INTO first_seen (source, id, at)
		SELECT s, i, $3 FROM unnest($1::text[], $2::text[]) AS n (s, i) ORDER BY s, i
		ON CONFLICT (source, id) DO NOTHING`
	selFirstSeenQuery = `SELECT f.source, f.id, f.at FROM first_seen f
		JOIN unnest($1::text[], $2::text[]) AS n (s, i) ON f.source = n.s AND f.id = n.i`
)

// replaceInventory is ReplaceInventory inside t. It writes only what
// changed: most reports repeat the stored inventory. It runs in three
// round trips (and a fourth for updates the fleet had not seen dated):
// lock and read, work out the changes, write them.
func replaceInventory(t *wtx, inv inventory) error {
	r := inv.r
	var (
		found    bool
		lastSeen pgtype.Int8
		seq      int64
		revoked  bool
		stored   = map[string]updateRow{}
	)
	b := &pgx.Batch{}
	b.Queue(lockSeenQuery, r.Endpoint).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&lastSeen, &seq, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	b.Queue(selUpdatesQuery, r.Endpoint).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var row updateRow
			if err := rows.Scan(&id, &row.source, &row.name, &row.title, &row.version, &row.installedVersion,
				&row.category, &row.severity, &row.cvss, &row.cves, &row.knownExploited, &row.released,
				&row.rebootRequired, &row.requires, &row.installed, &row.installedAt,
				&row.releasedFrom, &row.sourcePackage, &row.urgency); err != nil {
				return err
			}
			stored[id] = row
		}
		return rows.Err()
	})
	if err := t.send(b); err != nil {
		return err
	}
	if !found {
		return store.ErrNotFound
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

	rows := slices.Clone(inv.rows)
	if err := firstSeen(t, inv, rows, stored); err != nil {
		return fmt.Errorf("first seen: %w", err)
	}
	b = &pgx.Batch{}
	var reboot []byte
	if r.Reboot != nil {
		var err error
		if reboot, err = json.Marshal(r.Reboot); err != nil {
			return fmt.Errorf("reboot state: %w", err)
		}
	}
	b.Queue(updEndpointQuery, r.Hostname, r.OS.Family, r.OS.Version, inv.labels, r.At.UnixNano(),
		r.RebootPending, r.Seq, r.JobSeq, r.Endpoint, r.AgentVersion, reboot)
	for i, u := range r.Updates {
		row := rows[i]
		prev, had := stored[u.ID]
		delete(stored, u.ID)
		// An update reported installed keeps the time it was first seen
		// installed, which is known only when the controller saw it
		// missing before: one installed before the endpoint first reported
		// it (onboarding) has no install time. One reported not installed
		// has none.
		if row.installed {
			row.installedAt = prev.installedAt
			if had && !prev.installed && !prev.installedAt.Valid {
				row.installedAt = pgtype.Int8{Int64: r.At.UnixNano(), Valid: true}
			}
		}
		q := insUpdateQuery
		if had {
			if row.equal(prev) {
				continue
			}
			q = setUpdateQuery
		}
		// Both statements take the same arguments in the same order.
		b.Queue(q, row.source, row.name, row.title, row.version, row.installedVersion, row.category,
			row.severity, row.cvss, row.cves, row.knownExploited, row.released, row.rebootRequired, row.requires,
			row.installed, row.installedAt, row.releasedFrom, row.sourcePackage, row.urgency, r.Endpoint, u.ID)
	}
	// What the report no longer lists is gone from the endpoint.
	if len(stored) > 0 {
		gone := make([]string, 0, len(stored))
		for id := range stored {
			gone = append(gone, id)
		}
		b.Queue(delUpdatesQuery, r.Endpoint, gone)
	}
	return t.send(b)
}

// firstSeen fills the release time of each row its source gave none: when
// the fleet first saw the update (by source and id), recorded at its
// first report on any endpoint. A stored row already carries it, so a
// repeated report costs no lookup.
func firstSeen(t *wtx, inv inventory, rows []updateRow, stored map[string]updateRow) error {
	type key struct{ source, id string }
	var need []int
	var sources, ids []string
	seen := map[key]bool{}
	for i, u := range inv.r.Updates {
		row := &rows[i]
		if row.released.Valid {
			continue
		}
		row.releasedFrom = protocol.ReleasedFirstSeen
		if prev, had := stored[u.ID]; had && prev.releasedFrom == protocol.ReleasedFirstSeen && prev.source == row.source && prev.released.Valid {
			row.released = prev.released
			continue
		}
		need = append(need, i)
		if k := (key{row.source, u.ID}); !seen[k] {
			seen[k] = true
			sources, ids = append(sources, k.source), append(ids, k.id)
		}
	}
	if len(need) == 0 {
		return nil
	}
	at := map[key]int64{}
	b := &pgx.Batch{}
	b.Queue(insFirstSeenQuery, sources, ids, inv.r.At.UnixNano())
	b.Queue(selFirstSeenQuery, sources, ids).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var k key
			var t int64
			if err := rs.Scan(&k.source, &k.id, &t); err != nil {
				return err
			}
			at[k] = t
		}
		return rs.Err()
	})
	if err := t.send(b); err != nil {
		return err
	}
	for _, i := range need {
		k := key{rows[i].source, inv.r.Updates[i].ID}
		v, ok := at[k]
		if !ok {
			return fmt.Errorf("update %q of source %q: no first-seen time after recording it", k.id, k.source)
		}
		rows[i].released = pgtype.Int8{Int64: v, Valid: true}
	}
	return nil
}

// scanUpdate reads one row of updateColumns.
func scanUpdate(rows pgx.Rows, endpoint *string) (*protocol.Update, error) {
	u := &protocol.Update{}
	var released, installedAt pgtype.Int8
	if err := rows.Scan(endpoint, &u.ID, &u.Source, &u.Name, &u.Title, &u.Version, &u.InstalledVersion,
		&u.Category, &u.Severity, &u.CVSS, &u.CVEs, &u.KnownExploited, &released, &u.RebootRequired, &u.Requires,
		&u.Installed, &installedAt, &u.ReleasedFrom, &u.SourcePackage, &u.Urgency); err != nil {
		return nil, err
	}
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
