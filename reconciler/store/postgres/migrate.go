package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchline/patchline/reconciler/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockKey is the advisory lock (pg_advisory_xact_lock) under which
// a patchd migrates the database: replicas starting together take turns,
// and the ones after the first find nothing left to do. The number is
// "patchdmi" in ASCII, unlikely to be another application's key.
const migrateLockKey int64 = 0x7061746368646d69

// migrate applies, in one transaction, the migrations in fsys
// (migrations/NNNN_name.sql, in number order) that schema_migrations does
// not list yet. A failure leaves the schema as it was. A database whose
// schema is newer than fsys knows is refused: an older patchd must not
// write to it.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) error {
	todo, err := listMigrations(fsys)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	known := 0
	if len(todo) > 0 {
		known = todo[len(todo)-1].version
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		if current > known {
			return fmt.Errorf("the database's schema is version %d, newer than this patchd knows (up to %d): a newer patchd has used it, "+
				"and this one must not write to it; run the newer patchd (upgrade every patchd on this database together): %w", current, known, store.ErrConflict)
		}
		for _, m := range todo {
			if m.version <= current {
				continue
			}
			body, err := fs.ReadFile(fsys, m.name)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			// Without arguments pgx sends the file as one simple query,
			// which may hold several statements.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migrate: %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, path.Base(m.name)); err != nil {
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
		num, _, ok := strings.Cut(path.Base(name), "_")
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
