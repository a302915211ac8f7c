package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/reconciler/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies, in one transaction, the migrations in fsys
// (migrations/NNNN_name.sql, in number order) that schema_version does not
// list yet. A crash or failure leaves the schema as it was.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	todo, err := listMigrations(fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	known := 0
	if len(todo) > 0 {
		known = todo[len(todo)-1].version
	}

	return inTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_version: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read schema_version: %w", err)
		}
		// An older controller must not write to a schema it does not know.
		if current > known {
			return fmt.Errorf("migrate: the store has schema version %d, newer than the %d this controller knows: %w", current, known, store.ErrConflict)
		}
		for _, m := range todo {
			if m.version <= current {
				continue
			}
			body, err := fs.ReadFile(fsys, m.name)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, path.Base(m.name), time.Now().UnixNano()); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.name, err)
			}
		}
		return nil
	})
}

// A migration is one file of migrations/.
type migration struct {
	version int
	name    string
}

// listMigrations lists the migrations in fsys in version order.
func listMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var todo []migration
	seen := map[int]string{}
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("%s: name must start with a positive number and '_'", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("%s and %s have the same number", prev, name)
		}
		seen[v] = name
		todo = append(todo, migration{v, name})
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].version < todo[j].version })
	return todo, nil
}

// knownVersion is the newest schema version of the migrations in fsys.
func knownVersion(fsys fs.FS) (int, error) {
	todo, err := listMigrations(fsys)
	if err != nil || len(todo) == 0 {
		return 0, err
	}
	return todo[len(todo)-1].version, nil
}
