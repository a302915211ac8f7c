package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/reconciler/store"
)

func TestOpenSetsDurabilityPragmas(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		pragma string
		want   string
	}{
		{"write-ahead log", "journal_mode", "wal"},
		{"fsync on every commit", "synchronous", "2"},
		{"foreign keys enforced", "foreign_keys", "1"},
		{"waits for locks", "busy_timeout", "10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, pool := range map[string]*sql.DB{"write": db.write, "read": db.read} {
				var got string
				if err := pool.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("%s connection: PRAGMA %s = %q, want %q", name, tc.pragma, got, tc.want)
				}
			}
		})
	}
}

// TestWriterCheckpointsLessOften: the write connection lets the log grow
// to 10,000 pages before copying it into the database file.
func TestWriterCheckpointsLessOften(t *testing.T) {
	db, _ := openTest(t)
	var got int
	if err := db.write.QueryRowContext(context.Background(), "PRAGMA wal_autocheckpoint").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != 10000 {
		t.Errorf("wal_autocheckpoint = %d, want 10000", got)
	}
}

// TestReportsLeaveCommitsDurable: an inventory report commits without
// waiting for the disk, and the write connection is back to fsync on every
// commit afterwards, for the jobs and results that follow.
func TestReportsLeaveCommitsDurable(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	if err := db.ReplaceInventory(ctx, report("ep-1", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := db.write.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "2" {
		t.Errorf("after a report, the write connection has synchronous = %s, want 2 (FULL)", got)
	}
}

func TestStoreFileIsPrivate(t *testing.T) {
	_, path := openTest(t)
	for _, name := range []string{path, path + "-wal"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has permissions %o, want 600", filepath.Base(name), perm)
		}
	}
}

func TestReadPoolCannotWrite(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.read.Exec(`DELETE FROM audit`); err == nil {
		t.Fatal("delete on a read connection succeeded; read connections must be query-only")
	}
}

func TestOpenRejectsPathWithQuery(t *testing.T) {
	for _, path := range []string{"", "patchd.db?mode=memory"} {
		if _, err := Open(context.Background(), path); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", path, err)
		}
	}
}

// versions returns the schema_version rows.
func versions(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT name FROM schema_version ORDER BY version`)
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

func TestMigrate(t *testing.T) {
	v1 := &fstest.MapFile{Data: []byte(`CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`)}
	v2 := &fstest.MapFile{Data: []byte(`CREATE TABLE b (y INTEGER);`)}
	broken := &fstest.MapFile{Data: []byte(`CREATE TABLE c (z INTEGER); CREATE TABLE oops (`)}

	type step struct {
		files   fstest.MapFS
		wantErr bool
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
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2, "migrations/0003_c.sql": broken}, wantErr: true, want: []string{"0001_a.sql"}},
			},
			present: []string{"a"},
			absent:  []string{"b", "c"},
		},
		{
			name: "older controller refuses a newer schema",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/0002_b.sql": v2}, want: []string{"0001_a.sql", "0002_b.sql"}},
				{files: fstest.MapFS{"migrations/0001_a.sql": v1}, wantErr: true, want: []string{"0001_a.sql", "0002_b.sql"}},
			},
			present: []string{"a", "b"},
		},
		{
			name: "migration without a number is refused",
			steps: []step{
				{files: fstest.MapFS{"migrations/init.sql": v1}, wantErr: true},
			},
			absent: []string{"a"},
		},
		{
			name: "two migrations with one number are refused",
			steps: []step{
				{files: fstest.MapFS{"migrations/0001_a.sql": v1, "migrations/01_b.sql": v2}, wantErr: true},
			},
			absent: []string{"a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			for i, s := range tc.steps {
				err := migrate(context.Background(), db, s.files)
				if (err != nil) != s.wantErr {
					t.Fatalf("step %d: migrate error = %v, want error %v", i, err, s.wantErr)
				}
				if s.want == nil {
					continue
				}
				if diff := cmp.Diff(s.want, versions(t, db)); diff != "" {
					t.Errorf("step %d: schema_version (-want +got):\n%s", i, diff)
				}
			}
			for _, table := range append(append([]string(nil), tc.present...), tc.absent...) {
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				want := 0
				for _, p := range tc.present {
					if p == table {
						want = 1
					}
				}
				if n != want {
					t.Errorf("table %s: %d present, want %d", table, n, want)
				}
			}
			var rows int
			if len(tc.present) > 0 && tc.present[0] == "a" {
				if err := db.QueryRow(`SELECT count(*) FROM a`).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if rows != 1 {
					t.Errorf("table a has %d rows, want 1: a migration ran twice", rows)
				}
			}
		})
	}
}

func TestOpenTwiceKeepsOneSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patchd.db")
	all, err := listMigrations(migrations)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range all {
		want = append(want, filepath.Base(m.name))
	}
	for range 3 {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		got := versions(t, db.read)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("schema_version (-want +got):\n%s", diff)
		}
	}
}
