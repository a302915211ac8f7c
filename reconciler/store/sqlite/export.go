package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/patchline/patchline/reconciler/store"
)

// Export reads a store file, without writing to it, to copy it into
// another store (`patchctl store migrate`): every table of the schema,
// row by row, as of one moment. It is not safe for concurrent use.
//
// An export hands out each column's value as a plain Go value, whatever
// SQLite's storage of it:
//
//   - text: string; a time or a number: int64; cvss: float64; a flag
//     (0 or 1): bool; a node key hash, a token hash, a signed payload or
//     signature: []byte;
//   - a list kept as JSON (cves, requires, a job's updates, a revision's
//     problems, a token's scopes and clients): []string;
//   - a JSON document (labels, an audit entry's detail):
//     json.RawMessage, byte for byte as stored;
//   - NULL: nil.
//
// One column is not read as stored: every endpoint's job_seq_unknown is
// true. The copy is the start of another store, which, like a restored
// backup, cannot know the jobs its source created after it was read (a
// patchd still running on the source, or a source that is itself a
// backup): each endpoint's next report then raises its job numbers to
// what its agent has seen (see migrations/0004).
type Export struct {
	path    string
	db      *sql.DB
	tx      *sql.Tx
	version int
}

// A column kind says how an export hands out a column's values.
type columnKind int

const (
	colText columnKind = iota
	colInt
	colReal
	colBool
	colBlob
	colList
	colJSON
)

type exportColumn struct {
	name string
	kind columnKind
}

// exportTable is one table of the schema as an export reads it.
type exportTable struct {
	name string
	// order sorts the rows: the primary key, so a copy is read in the
	// order the source keeps.
	order   string
	columns []exportColumn
}

// exportTables are every table of the schema at its newest version
// (migrations/*.sql), a table that others refer to before them; a test
// checks them against the schema.
var exportTables = []exportTable{
	{name: "endpoints", order: "id", columns: []exportColumn{
		{"id", colText}, {"client", colText}, {"hostname", colText}, {"node_key_hash", colBlob},
		{"enrolled_at", colInt}, {"os_family", colText}, {"os_version", colText}, {"labels", colJSON},
		{"last_seen", colInt}, {"reboot_pending", colBool}, {"job_seq", colInt}, {"report_seq", colInt},
		{"revoked_at", colInt}, {"revoked_by", colText}, {"job_seq_unknown", colBool}, {"reboot_state", colJSON},
		{"agent_version", colText},
		{"enroll_labels", colJSON}, {"enroll_token", colInt},
	}},
	{name: "updates", order: "endpoint, id", columns: []exportColumn{
		{"endpoint", colText}, {"id", colText}, {"source", colText}, {"name", colText}, {"title", colText},
		{"version", colText}, {"installed_version", colText}, {"category", colText}, {"severity", colText},
		{"cvss", colReal}, {"cves", colList}, {"known_exploited", colBool}, {"released", colInt},
		{"reboot_required", colBool}, {"requires", colList}, {"installed", colBool}, {"installed_at", colInt},
		{"released_from", colText}, {"source_package", colText}, {"urgency", colText},
	}},
	{name: "first_seen", order: "source, id", columns: []exportColumn{
		{"source", colText}, {"id", colText}, {"at", colInt},
	}},
	{name: "jobs", order: "endpoint, seq", columns: []exportColumn{
		{"id", colText}, {"seq", colInt}, {"endpoint", colText}, {"client", colText}, {"ring", colText},
		{"updates", colList}, {"not_after", colInt}, {"reboot", colText}, {"reboot_deadline", colText},
		{"revision", colText}, {"idempotency_key", colText}, {"payload", colBlob}, {"signature", colBlob},
		{"state", colText}, {"lease_until", colInt}, {"created_at", colInt}, {"finished_at", colInt}, {"action", colText},
	}},
	{name: "attempts", order: "id", columns: []exportColumn{
		{"id", colInt}, {"endpoint", colText}, {"update_id", colText}, {"job", colText}, {"ring", colText},
		{"at", colInt}, {"result", colText}, {"error", colText}, {"output", colText}, {"action", colText},
	}},
	{name: "revisions", order: "id", columns: []exportColumn{
		{"id", colInt}, {"hash", colText}, {"status", colText}, {"at", colInt}, {"client", colText},
		{"problems", colList}, {"reason", colText},
	}},
	{name: "audit", order: "id", columns: []exportColumn{
		{"id", colInt}, {"at", colInt}, {"kind", colText}, {"client", colText}, {"endpoint", colText},
		{"revision", colText}, {"job", colText}, {"detail", colJSON},
	}},
	{name: "tokens", order: "name", columns: []exportColumn{
		{"name", colText}, {"hash", colBlob}, {"scopes", colList}, {"clients", colList},
		{"created_at", colInt}, {"created_by", colText}, {"last_used", colInt}, {"revoked_at", colInt},
		{"revoked_by", colText},
	}},
	{name: "halts", order: "client, ring, update_id", columns: []exportColumn{
		{"client", colText}, {"ring", colText}, {"update_id", colText}, {"reason", colText},
		{"revision", colText}, {"at", colInt},
	}},
	{name: "enroll_tokens", order: "id", columns: []exportColumn{
		{"id", colInt}, {"name", colText}, {"client", colText}, {"hash", colBlob}, {"labels", colJSON},
		{"expires_at", colInt}, {"max_uses", colInt}, {"uses", colInt}, {"created_at", colInt},
		{"created_by", colText}, {"revoked_at", colInt}, {"revoked_by", colText},
	}},
}

// ErrSchemaVersion is what OpenExport's error wraps when the store's
// schema is not the version this program knows: an export reads every
// table and column by name, so only the same version will do.
var ErrSchemaVersion = errors.New("the store's schema version differs from this program's")

// OpenExport opens the store file at path read-only for an export. The
// file must pass SQLite's quick check and hold the schema at exactly the
// version this program knows: an older store must be brought up to date
// first by running patchd (of this version) on it once, a newer one read
// by the program of its version. Everything the export reads is of one
// moment (one read transaction), even while a patchd writes to the file;
// Close ends it.
func OpenExport(ctx context.Context, path string) (*Export, error) {
	fail := func(err error) (*Export, error) {
		return nil, fmt.Errorf("export store %s: %w", path, err)
	}
	// Opening would create a missing file; an export must not.
	fi, err := os.Stat(path)
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("not a file: %w", store.ErrInvalid))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	// Read-only, but not immutable: a store whose patchd stopped without
	// a checkpoint (or still runs) has commits in its write-ahead log.
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fail(err)
	}
	// One connection: the read transaction is on it.
	db.SetMaxOpenConns(1)
	e := &Export{path: path, db: db}
	if err := e.open(ctx); err != nil {
		db.Close()
		return fail(err)
	}
	return e, nil
}

func (e *Export) open(ctx context.Context) error {
	if err := quickCheck(ctx, e.db); err != nil {
		return damaged(err)
	}
	tx, err := e.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return damaged(err)
	}
	e.tx = tx
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&e.version); err != nil {
		return fmt.Errorf("not a Patchline store (%v): %w", damaged(err), store.ErrInvalid)
	}
	known, err := knownVersion(migrations)
	if err != nil {
		return err
	}
	switch {
	case e.version < known:
		return fmt.Errorf("schema version %d, this program knows %d: run patchd of this version on the store once (it brings the schema up to date at start), stop it, and try again: %w",
			e.version, known, ErrSchemaVersion)
	case e.version > known:
		return fmt.Errorf("schema version %d, newer than the %d this program knows: use the patchctl of the patchd that wrote it: %w", e.version, known, ErrSchemaVersion)
	}
	return nil
}

// Close ends the export's read transaction and closes the file.
func (e *Export) Close() error {
	var err error
	if e.tx != nil {
		err = rollback(e.tx)
	}
	return errors.Join(err, e.db.Close())
}

// SchemaVersion is the store's schema version.
func (e *Export) SchemaVersion() int { return e.version }

// Tables names the store's tables, every one that holds its data, a
// table that others refer to (endpoints) before them.
func (e *Export) Tables() []string {
	names := make([]string, len(exportTables))
	for i, t := range exportTables {
		names[i] = t.name
	}
	return names
}

func tableOf(name string) (exportTable, error) {
	for _, t := range exportTables {
		if t.name == name {
			return t, nil
		}
	}
	return exportTable{}, fmt.Errorf("no table %q in the store: %w", name, store.ErrNotFound)
}

// Count is how many rows table holds.
func (e *Export) Count(ctx context.Context, table string) (int64, error) {
	t, err := tableOf(table)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := e.tx.QueryRowContext(ctx, "SELECT count(*) FROM "+t.name).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", t.name, err)
	}
	return n, nil
}

// Rows returns a reader of table's rows, in primary key order, each
// with the values of Columns. It reads nothing until its first Next.
func (e *Export) Rows(ctx context.Context, table string) (*Rows, error) {
	t, err := tableOf(table)
	if err != nil {
		return nil, err
	}
	return &Rows{ctx: ctx, tx: e.tx, table: t}, nil
}

// Rows reads one table of an export. Its Next, Values and Err are those
// of pgx's CopyFromSource, so that it can feed a bulk copy into
// PostgreSQL without this package linking pgx: Next moves to the next
// row (false at the end or on an error), Values returns the row's
// values, Err the error that ended the rows, if any.
type Rows struct {
	ctx   context.Context
	tx    *sql.Tx
	table exportTable
	rows  *sql.Rows
	// raw receives a row from SQLite; values are its values as handed
	// out.
	raw, values []any
	err         error
	done        bool
}

// Columns names the values of each row, in order.
func (r *Rows) Columns() []string {
	names := make([]string, len(r.table.columns))
	for i, c := range r.table.columns {
		names[i] = c.name
	}
	return names
}

// Next moves to the next row.
func (r *Rows) Next() bool {
	if r.done {
		return false
	}
	if r.rows == nil {
		rows, err := r.tx.QueryContext(r.ctx, "SELECT "+strings.Join(r.Columns(), ", ")+" FROM "+r.table.name+" ORDER BY "+r.table.order)
		if err != nil {
			return r.stop(fmt.Errorf("read %s: %w", r.table.name, err))
		}
		r.rows = rows
		r.raw = make([]any, len(r.table.columns))
	}
	if !r.rows.Next() {
		return r.stop(r.rows.Err())
	}
	ptrs := make([]any, len(r.raw))
	for i := range r.raw {
		ptrs[i] = &r.raw[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return r.stop(fmt.Errorf("read %s: %w", r.table.name, err))
	}
	values := make([]any, len(r.raw))
	for i, c := range r.table.columns {
		v, err := exportValue(c.kind, r.raw[i])
		if err != nil {
			return r.stop(fmt.Errorf("read %s: row %v: column %s: %w", r.table.name, r.raw[0], c.name, err))
		}
		if r.table.name == "endpoints" && c.name == "job_seq_unknown" {
			// See Export: the copy cannot know the jobs made after it.
			v = true
		}
		values[i] = v
	}
	r.values = values
	return true
}

// stop ends the rows with err (nil at their end) and returns false.
func (r *Rows) stop(err error) bool {
	r.done, r.err, r.values = true, err, nil
	if r.rows != nil {
		if cerr := r.rows.Close(); r.err == nil {
			r.err = cerr
		}
	}
	return false
}

// Values returns the current row's values: a new slice for every row.
func (r *Rows) Values() ([]any, error) {
	if r.values == nil {
		return nil, errors.New("no row: call Next first")
	}
	return r.values, nil
}

// Err is the error that ended the rows, nil when they ended at the last
// row.
func (r *Rows) Err() error { return r.err }

// Close ends the rows before their end.
func (r *Rows) Close() error {
	if !r.done {
		r.stop(nil)
	}
	return r.err
}

// exportValue is v, as SQLite gave it, handed out as kind says (see
// Export).
func exportValue(kind columnKind, v any) (any, error) {
	if v == nil {
		if kind == colText {
			return nil, errors.New("NULL where text is expected")
		}
		return nil, nil
	}
	switch kind {
	case colText:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case colInt:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case colReal:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		}
	case colBool:
		if n, ok := v.(int64); ok && (n == 0 || n == 1) {
			return n == 1, nil
		}
	case colBlob:
		if b, ok := v.([]byte); ok {
			return b, nil
		}
	case colList:
		if s, ok := v.(string); ok {
			list, err := jsonList[string](sql.NullString{String: s, Valid: true})
			if err != nil {
				return nil, fmt.Errorf("not a JSON list of strings: %w", err)
			}
			if list == nil {
				// "" and "null" are an empty list, as the store reads them.
				return nil, nil
			}
			return list, nil
		}
	case colJSON:
		if s, ok := v.(string); ok {
			if !json.Valid([]byte(s)) {
				return nil, errors.New("not JSON")
			}
			return json.RawMessage(s), nil
		}
	}
	return nil, fmt.Errorf("unexpected value %T %v", v, v)
}
