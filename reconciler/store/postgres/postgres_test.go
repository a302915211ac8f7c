package postgres

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// t0 is the test clock's start.
var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// openDSN opens the store in the database dsn; it is closed when the test
// ends.
func openDSN(t testing.TB, dsn string, opts ...Option) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openTest opens a store in a new database and returns it with the
// database's DSN.
func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	dsn := pgtest.DB(t)
	return openDSN(t, dsn), dsn
}

// TestContract runs the store contract against PostgreSQL. Reopen opens
// another pool on the same database: a restarted controller, or a replica.
func TestContract(t *testing.T) {
	var mu sync.Mutex
	dsns := map[*DB]string{}
	storetest.Run(t, func(t *testing.T) storetest.Store {
		db, dsn := openTest(t)
		mu.Lock()
		defer mu.Unlock()
		dsns[db] = dsn
		return db
	}, storetest.Reopen(func(t *testing.T, s storetest.Store) storetest.Store {
		mu.Lock()
		dsn := dsns[s.(*DB)]
		mu.Unlock()
		db := openDSN(t, dsn)
		mu.Lock()
		defer mu.Unlock()
		dsns[db] = dsn
		return db
	}))
}

// TestBackupSaysWhatToUse: Backup refuses, as invalid input, with what to
// use instead, naming every table the database holds.
func TestBackupSaysWhatToUse(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	rc, _, err := db.Backup(ctx)
	if rc != nil || !errors.Is(err, ErrBackupUnsupported) || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Backup = %v, %v; want ErrBackupUnsupported, an ErrInvalid", rc, err)
	}
	for _, want := range []string{"pg_dump", "point-in-time recovery", "--signing-key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Backup's error %q does not mention %s", err, want)
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tables, slices.Sorted(slices.Values(Tables))); diff != "" {
		t.Errorf("Tables against the database's tables (-database +Tables):\n%s", diff)
	}
	for _, table := range tables {
		if !strings.Contains(ErrBackupUnsupported.Error(), " "+table) {
			t.Errorf("the backup message does not name table %s", table)
		}
	}
}

// TestRecordSigningKey: the first key recorded stays; another one is
// answered with the first, and so is a second handle (a replica).
func TestRecordSigningKey(t *testing.T) {
	db, dsn := openTest(t)
	ctx := context.Background()
	first, _, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	got, at, err := db.RecordSigningKey(ctx, first, t0)
	if err != nil || !first.Equal(got) || !at.Equal(t0) {
		t.Fatalf("first record: %x at %s, %v; want %x at %s", got, at, err, first, t0)
	}
	replica := openDSN(t, dsn)
	for name, s := range map[string]*DB{"same handle": db, "another handle": replica} {
		got, at, err := s.RecordSigningKey(ctx, other, t0.Add(time.Hour))
		if err != nil || !first.Equal(got) || !at.Equal(t0) {
			t.Errorf("%s, another key: %x at %s, %v; want the first, %x at %s", name, got, at, err, first, t0)
		}
	}
	if _, _, err := db.RecordSigningKey(ctx, first[:5], t0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a key that is no ed25519 public key: %v, want ErrInvalid", err)
	}
}

// TestTextPostgreSQLCannotHold: PostgreSQL text holds neither NUL bytes
// nor invalid UTF-8 (SQLite stores both). The API refuses such text from
// agents; anything that reaches the store all the same is ErrInvalid, not
// an internal error, and changes nothing.
func TestTextPostgreSQLCannotHold(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	if err := db.Enroll(ctx, store.Enrollment{ID: "ep-1", Client: "acme", NodeKeyHash: []byte{1}, EnrolledAt: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		hostname string
	}{
		{"NUL byte", "pc\x00one"},
		{"invalid UTF-8", "pc\xffone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := db.ReplaceInventory(ctx, store.Report{Endpoint: "ep-1", Hostname: tc.hostname, At: t0})
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("report with hostname %q: %v, want ErrInvalid", tc.hostname, err)
			}
		})
	}
	e, err := db.EndpointSnapshot(ctx, "ep-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if !e.LastSeen.IsZero() {
		t.Errorf("a refused report was stored: %+v", e)
	}
}

// TestRetryable: which errors run a transaction again, and which the
// caller sees as invalid input.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		retry     bool
		isInvalid bool
	}{
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true, false},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true, false},
		{"wrapped deadlock", errors.Join(errors.New("job"), &pgconn.PgError{Code: "40P01"}), true, false},
		{"key taken meanwhile", errRetry, true, false},
		{"connection lost before the commit", fmt.Errorf("begin: %w: %w", errors.New("EOF"), errNotCommitted), true, false},
		{"connection lost", errors.New("unexpected EOF"), false, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, false},
		{"NUL byte in text", &pgconn.PgError{Code: "22021"}, false, true},
		{"number out of range", &pgconn.PgError{Code: "22003"}, false, true},
		{"conflict", store.ErrConflict, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.retry {
				t.Errorf("retryable = %v, want %v", got, tc.retry)
			}
			if got := errors.Is(classify(tc.err), store.ErrInvalid); got != tc.isInvalid {
				t.Errorf("classify is ErrInvalid = %v, want %v", got, tc.isInvalid)
			}
		})
	}
}

// TestSnapshotInByteOrderWhateverTheCollation: in a database whose
// collation sorts as people read (case and punctuation ignored at first),
// snapshots are still sorted byte by byte, as Go sorts strings and as the
// SQLite store does.
func TestSnapshotInByteOrderWhateverTheCollation(t *testing.T) {
	ctx := context.Background()
	c := pgtest.Shared(t)
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("icu_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`); err != nil {
		t.Fatalf("a database with an ICU collation: %v", err)
	}
	db := openDSN(t, c.DSN(name))
	var peopleOrder bool
	if err := db.pool.QueryRow(ctx, `SELECT 'a' < 'B'`).Scan(&peopleOrder); err != nil || !peopleOrder {
		t.Fatalf("the database does not sort 'a' before 'B' (%v, %v): the test would prove nothing", peopleOrder, err)
	}
	ids := []string{"ep-b", "EP-A", "ep_a", "ep-a", "épa", "epa"}
	for _, id := range ids {
		if err := db.Enroll(ctx, store.Enrollment{ID: id, Client: "acme", NodeKeyHash: []byte{1}, EnrolledAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	var us []*protocol.Update
	for _, id := range []string{"kb-1", "KB1", "KB-1", "kb1", "ä-1", "a-2"} {
		us = append(us, &protocol.Update{ID: id, Source: "winget"})
	}
	if err := db.ReplaceInventory(ctx, store.Report{Endpoint: "ep-a", At: t0, Updates: us}); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range snap.Endpoints {
		got = append(got, e.ID)
		if e.ID == "ep-a" {
			for _, u := range e.Updates {
				got = append(got, "  "+u.ID)
			}
		}
	}
	want := []string{"EP-A", "ep-a", "  KB-1", "  KB1", "  a-2", "  kb-1", "  kb1", "  ä-1", "ep-b", "ep_a", "epa", "épa"}
	if len(got) != len(want) {
		t.Fatalf("snapshot order %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("snapshot order %q, want %q", got, want)
		}
	}
}

// TestWriteSurvivesALostConnection: the server ends the store's idle
// connections (a restart, a failover): the next write runs again on a new
// connection instead of failing.
func TestWriteSurvivesALostConnection(t *testing.T) {
	db, dsn := openTest(t)
	ctx := context.Background()
	// Fill the pool with idle connections.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := db.AppendAudit(ctx, protocol.AuditEntry{At: t0, Kind: protocol.AuditHalt, Job: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ended int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t`).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("ending the store's connections: %d ended, %v", ended, err)
	}
	retries := db.WriteStats().Retries
	if err := db.Enroll(ctx, store.Enrollment{ID: "ep-1", Client: "acme", NodeKeyHash: []byte{1}, EnrolledAt: t0}); err != nil {
		t.Fatalf("write after the connections were ended: %v", err)
	}
	if db.WriteStats().Retries == retries {
		t.Errorf("the write did not meet an ended connection (%d retries): the test proves nothing", db.WriteStats().Retries)
	}
	if _, err := db.EndpointByID(ctx, "ep-1"); err != nil {
		t.Error(err)
	}
}
