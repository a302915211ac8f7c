package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// versions returns the schema_migrations rows' names.
func versions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// newPool is a pool on a new empty database, closed when the test ends.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrate(t *testing.T) {
	v1 := &fstest.MapFile{Data: []byte(`CREATE TABLE a (x integer); INSERT INTO a VALUES (1);`)}
	v2 := &fstest.MapFile{Data: []byte(`CREATE TABLE b (y integer);`)}
	broken := &fstest.MapFile{Data: []byte(`CREATE TABLE c (z integer); CREATE TABLE oops (`)}

	type step struct {
		files   fstest.MapFS
		wantErr string // part of the error, "" for none
		want    []string
	}
	for _, tc := range []struct {
		name  string
		steps []step
		// tables that must exist after the last step, and must not
		present, absent []string
	}{
		{
			name: "fresh database gets every migration",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2}, want: []string{"0001_a.sql", "0002_b.sql"}},
			},
			present: []string{"a", "b"},
		},
		{
			name: "restart runs nothing again",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, want: []string{"0001_a.sql"}},
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, want: []string{"0001_a.sql"}},
			},
			present: []string{"a"},
		},
		{
			name: "upgrade runs only the new migration",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, want: []string{"0001_a.sql"}},
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2}, want: []string{"0001_a.sql", "0002_b.sql"}},
			},
			present: []string{"a", "b"},
		},
		{
			name: "failing migration leaves the schema as it was",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, want: []string{"0001_a.sql"}},
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2, "migrations/0003_c.sql": broken}, wantErr: "0003_c.sql", want: []string{"0001_a.sql"}},
			},
			present: []string{"a"},
			absent:  []string{"b", "c"},
		},
		{
			name: "older patchd refuses a newer schema",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2}, want: []string{"0001_a.sql", "0002_b.sql"}},
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, wantErr: "the database's schema is version 2, newer than this patchd knows (up to 1): a newer patchd has used it", want: []string{"0001_a.sql", "0002_b.sql"}},
			},
			present: []string{"a", "b"},
		},
		{
			name: "migration without a number is refused",
			steps: []step{
				{files: fstest.MapFS{"migrations/init.sql": v1}, wantErr: "must start with a positive number"},
			},
			absent: []string{"a"},
		},
		{
			name: "two migrations with one number are refused",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/01_b.sql": v2}, wantErr: "same number"},
			},
			absent: []string{"a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := newPool(t)
			ctx := context.Background()
			for i, s := range tc.steps {
				err := migrate(ctx, pool, s.files)
				if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
					t.Fatalf("step %d: migrate error = %v, want one saying %q", i, err, s.wantErr)
				}
				if s.want == nil {
					continue
				}
				if diff := cmp.Diff(s.want, versions(t, pool)); diff != "" {
					t.Errorf("step %d: schema_migrations (-want +got):\n%s", i, diff)
				}
			}
			for _, table := range append(append([]string(nil), tc.present...), tc.absent...) {
				var exists bool
				if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
					t.Fatal(err)
				}
				want := false
				for _, p := range tc.present {
					want = want || p == table
				}
				if exists != want {
					t.Errorf("table %s: exists %v, want %v", table, exists, want)
				}
			}
			if len(tc.present) > 0 && tc.present[0] == "a" {
				var rows int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM a`).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if rows != 1 {
					t.Errorf("table a has %d rows, want 1: a migration ran twice", rows)
				}
			}
		})
	}
}

// TestReplicasStartTogether: several patchd replicas opening a new
// database at once migrate it once; every one of them opens.
func TestReplicasStartTogether(t *testing.T) {
	dsn := pgtest.DB(t)
	const replicas = 4
	var wg sync.WaitGroup
	dbs := make([]*DB, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), dsn) })
	}
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
			continue
		}
		dbs[i].Close()
	}
	db := openDSN(t, dsn)
	all, err := listMigrations(migrations)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range all {
		want = append(want, path.Base(m.name))
	}
	if diff := cmp.Diff(want, versions(t, db.pool)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

// TestOpenRefusesNewerSchema: the store of a newer patchd is refused with
// what to do, and is left alone.
func TestOpenRefusesNewerSchema(t *testing.T) {
	db, dsn := openTest(t)
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	all, err := listMigrations(migrations)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the database's schema is version 999, newer than this patchd knows (up to %d)", all[len(all)-1].version)
	_, err = Open(ctx, dsn)
	if err == nil || !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenRefusesBadConnectionStrings(t *testing.T) {
	for _, tc := range []struct {
		name, dsn string
		opts      []Option
		want      error
	}{
		{"empty", "", nil, store.ErrInvalid},
		{"blank", "  ", nil, store.ErrInvalid},
		{"not a connection string", "postgres://[::1", nil, store.ErrInvalid},
		{"port out of range", "host=localhost port=99999", nil, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.dsn, tc.opts...)
			if !errors.Is(err, tc.want) {
				t.Errorf("Open(%q) = %v, want %v", tc.dsn, err, tc.want)
			}
		})
	}
}

// TestPassword: a password given with WithPassword is the one used, in
// place of one in the connection string, and no error repeats either.
func TestPassword(t *testing.T) {
	pgtest.Shared(t) // skips or fails when PostgreSQL is missing
	ctx := context.Background()
	// A cluster of its own: its pg_hba.conf changes.
	c, err := pgtest.Start(ctx, pgtest.Options{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	const secret = "correct horse battery staple"
	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		`CREATE ROLE patchd LOGIN PASSWORD '` + secret + `'`,
		`CREATE DATABASE patchline OWNER patchd`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Over TCP, patchd must give its password; the socket stays trusted.
	hba := filepath.Join(c.Dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("host all patchd 127.0.0.1/32 scram-sha-256\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}

	url := fmt.Sprintf("postgres://patchd@127.0.0.1:%d/patchline?sslmode=disable", c.Port)
	urlWithWrong := fmt.Sprintf("postgres://patchd:in-the-url@127.0.0.1:%d/patchline?sslmode=disable", c.Port)
	for _, tc := range []struct {
		name string
		dsn  string
		opts []Option
		ok   bool
	}{
		{"no password", url, nil, false},
		{"wrong password", url, []Option{WithPassword("Tr0ub4dor&3")}, false},
		{"password from the option", url, []Option{WithPassword(secret)}, true},
		{"the option wins over the URL's", urlWithWrong, []Option{WithPassword(secret)}, true},
		{"the URL's without the option", urlWithWrong, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctx, tc.dsn, tc.opts...)
			if db != nil {
				defer db.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("Open: %v, want success %v", err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "Tr0ub4dor") || strings.Contains(err.Error(), "in-the-url")) {
				t.Errorf("the error repeats the password: %v", err)
			}
		})
	}
}

// TestHaltsMigrationKeepsAuditedHalts: a database written before the
// halts table knows, after the upgrade, the halts its audit log left
// standing, so the first re-plan after the upgrade audits none of them
// again.
func TestHaltsMigrationKeepsAuditedHalts(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	old, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	first, err := fs.ReadFile(migrations, "migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, old, fstest.MapFS{"migrations/0001_init.sql": {Data: first}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ kind, client, detail string }{
		{"halt", "acme", `{"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`},
		{"halt", "acme", `{"update":"KB2","ring":"canary","reason":"2 of 2 failed"}`},
		{"halt", "acme", `{"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`}, // audited again by a restart
		{"resume", "acme", `{"update":"KB2","ring":"canary","reason":"2 of 2 failed"}`},
		{"halt", "globex", `{"update":"KB1","ring":"broad","reason":"5 of 9 failed"}`},
		{"resume", "globex", ``},
		{"halt", "initech", `["not", "an", "object"]`},
		{"job-created", "acme", `{"update":"KB3","ring":"canary"}`},
	} {
		var detail any
		if e.detail != "" {
			detail = e.detail
		}
		if _, err := old.Exec(ctx, `INSERT INTO audit (at, kind, client, endpoint, revision, job, detail) VALUES ($1, $2, $3, '', 'r1', '', $4)`,
			t0.UnixNano(), e.kind, e.client, detail); err != nil {
			t.Fatal(err)
		}
	}
	db := openDSN(t, dsn)
	got, err := db.Halts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]protocol.Halt{
		"acme":   {{Update: "KB1", Ring: "canary", Reason: "1 of 2 failed"}},
		"globex": {{Update: "KB1", Ring: "broad", Reason: "5 of 9 failed"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("halts after the upgrade (-want +got):\n%s", diff)
	}
	n, err := db.RecordHalts(ctx, "acme", "r2", want["acme"], t0.Add(time.Hour))
	if err != nil || n != 0 {
		t.Errorf("the first re-plan after the upgrade audited %d entries (%v), want none", n, err)
	}
}
