package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/reconciler/store"
)

// ImportTable is one table of another store to copy into the database
// (`patchctl store migrate`): its rows, with the values of Columns, as
// the store's tables name them. Values are plain Go values pgx encodes
// into the column's type: string, int64, float64, bool, []byte,
// []string for an array, json.RawMessage for JSON, nil for NULL.
type ImportTable struct {
	Name    string
	Columns []string
	// Rows yields the rows once (sqlite.Rows does, for example).
	Rows pgx.CopyFromSource
	// Count is how many rows the source holds: the copy must hold as
	// many.
	Count int64
}

// ErrNotEmpty is what Import's error wraps when the database already
// holds data.
var ErrNotEmpty = fmt.Errorf("the database is not empty: %w", store.ErrConflict)

// Import copies tables, in the order given (a table others refer to
// first), into the database, which must hold no data: a store moves into
// PostgreSQL once, and mixing two stores' rows would mix their
// endpoints, job numbers and audit logs.
//
// It is all or nothing: one transaction, which first locks every table
// of the schema against writes (a patchd started on the database
// meanwhile waits for the end), checks that none holds a row, copies
// the rows with COPY, moves each id sequence (attempts, revisions, audit)
// past the ids copied, so the ids given next follow them, and counts
// what every table holds against ImportTable.Count before it commits. A
// table or column the schema does not have is refused before anything
// is copied.
func (db *DB) Import(ctx context.Context, tables []ImportTable) error {
	tx, err := db.pool.BeginTx(ctx, durableTx)
	if err != nil {
		return fmt.Errorf("import: begin: %w", err)
	}
	// After a commit, Rollback does nothing.
	defer tx.Rollback(ctx)
	schema, err := readSchema(ctx, tx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := schema.accepts(tables); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if err := schema.lockEmpty(ctx, tx); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for _, t := range tables {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Columns, t.Rows)
		if err != nil {
			return fmt.Errorf("import: copy %s (after %d rows): %w", t.Name, n, classify(err))
		}
	}
	if err := schema.advanceSequences(ctx, tx); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t.Name}.Sanitize()).Scan(&n); err != nil {
			return fmt.Errorf("import: count %s: %w", t.Name, err)
		}
		if n != t.Count {
			return fmt.Errorf("import: %s holds %d rows after the copy, the source %d: nothing was imported", t.Name, n, t.Count)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("import: commit: %w", err)
	}
	return nil
}

// targetSchema is what the database's schema holds, as Import needs it.
type targetSchema struct {
	// tables are the schema's tables but schema_migrations, sorted.
	tables []string
	// columns are each table's columns.
	columns map[string][]string
	// serials are the columns whose default is a sequence's next value,
	// as "table.column".
	serials [][2]string
}

// readSchema reads the tables and columns of the schema the store's
// queries use (the first of the search path).
func readSchema(ctx context.Context, tx pgx.Tx) (*targetSchema, error) {
	rows, err := tx.Query(ctx, `SELECT c.table_name, c.column_name, coalesce(c.column_default, '') LIKE 'nextval(%'
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.table_name <> 'schema_migrations'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	s := &targetSchema{columns: map[string][]string{}}
	var table, column string
	var serial bool
	_, err = pgx.ForEachRow(rows, []any{&table, &column, &serial}, func() error {
		if _, ok := s.columns[table]; !ok {
			s.tables = append(s.tables, table)
		}
		s.columns[table] = append(s.columns[table], column)
		if serial {
			s.serials = append(s.serials, [2]string{table, column})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	return s, nil
}

// accepts refuses a table or a column the schema does not have, and a
// table given twice.
func (s *targetSchema) accepts(tables []ImportTable) error {
	seen := map[string]bool{}
	for _, t := range tables {
		cols, ok := s.columns[t.Name]
		if !ok {
			return fmt.Errorf("the PostgreSQL schema has no table %s for the source's: %w", t.Name, store.ErrInvalid)
		}
		if seen[t.Name] {
			return fmt.Errorf("table %s given twice: %w", t.Name, store.ErrInvalid)
		}
		seen[t.Name] = true
		for _, c := range t.Columns {
			if !slices.Contains(cols, c) {
				return fmt.Errorf("the PostgreSQL table %s has no column %s for the source's: %w", t.Name, c, store.ErrInvalid)
			}
		}
	}
	return nil
}

// lockEmpty locks every table against writes until the transaction ends
// and refuses when any holds a row, naming what it holds (its endpoints
// first: what a store in use always has).
func (s *targetSchema) lockEmpty(ctx context.Context, tx pgx.Tx) error {
	if len(s.tables) == 0 {
		return nil
	}
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		names[i] = pgx.Identifier{t}.Sanitize()
	}
	// EXCLUSIVE lets readers read and makes every writer wait.
	if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock the tables: %w", err)
	}
	order := slices.Clone(s.tables)
	if i := slices.Index(order, "endpoints"); i > 0 {
		order = append([]string{"endpoints"}, slices.Delete(order, i, i+1)...)
	}
	var held []string
	for _, t := range order {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return fmt.Errorf("count %s: %w", t, err)
		}
		switch {
		case n == 0:
		case t == "endpoints":
			held = append(held, fmt.Sprintf("%d endpoints", n))
		default:
			held = append(held, fmt.Sprintf("%d rows in %s", n, t))
		}
	}
	if len(held) > 0 {
		return fmt.Errorf("the target database already holds %s: migrate only into an empty database: %w", strings.Join(held, ", "), ErrNotEmpty)
	}
	return nil
}

// advanceSequences makes every id sequence give, next, the id after the
// highest one its column holds (or 1 in an empty table).
func (s *targetSchema) advanceSequences(ctx context.Context, tx pgx.Tx) error {
	for _, tc := range s.serials {
		table, column := pgx.Identifier{tc[0]}.Sanitize(), pgx.Identifier{tc[1]}.Sanitize()
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(%s), 0) + 1, false) FROM %s`, column, table)
		if _, err := tx.Exec(ctx, q, table, tc[1]); err != nil {
			return fmt.Errorf("move the id sequence of %s.%s: %w", tc[0], tc[1], err)
		}
	}
	return nil
}
