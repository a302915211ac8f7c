package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// saveBackup writes db's backup to a file in a new directory.
func saveBackup(t *testing.T, db *DB) string {
	t.Helper()
	rc, size, err := db.Backup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, rc)
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("backup is %d bytes, announced %d", n, size)
	}
	return path
}

// endpointIDs lists the enrolled endpoints of the store at path.
func endpointIDs(t *testing.T, path string) []string {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.read.Query(`SELECT id FROM endpoints ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestBackupWhileWriting: a backup taken while endpoints enroll is a
// whole store of one moment: it verifies, opens, and has every endpoint
// enrolled before it started.
func TestBackupWhileWriting(t *testing.T) {
	db, path := openTest(t)
	for i := range 50 {
		enroll(t, db, fmt.Sprintf("ep-%03d", i), "acme")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 50; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("ep-%03d", i)
			if err := db.Enroll(context.Background(), store.Enrollment{
				ID: id, Client: "acme", Hostname: id, NodeKeyHash: []byte("k"), EnrolledAt: t0,
			}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	backup := saveBackup(t, db)
	close(stop)
	wg.Wait()
	if err := Verify(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	ids := endpointIDs(t, backup)
	for i := range 50 {
		if !slices.Contains(ids, fmt.Sprintf("ep-%03d", i)) {
			t.Fatalf("backup lacks ep-%03d, enrolled before it started", i)
		}
	}
	// Nothing is left next to the store but the store itself.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("%s left in the data directory", e.Name())
		}
	}
}

func TestVerifyRefusesWhatIsNotAStore(t *testing.T) {
	dir := t.TempDir()
	db, _ := openTest(t)
	good := saveBackup(t, db)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := filepath.Join(dir, "other.db")
	odb, err := sql.Open("sqlite", other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := odb.Exec(`CREATE TABLE notes (text TEXT)`); err != nil {
		t.Fatal(err)
	}
	odb.Close()
	newer := filepath.Join(dir, "newer.db")
	if err := os.WriteFile(newer, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ndb, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ndb.Exec(`INSERT INTO schema_version (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	ndb.Close()

	for _, tc := range []struct {
		name, path, want string
	}{
		{"a text file", write("notes.txt", []byte("not a database\n")), "not an SQLite database"},
		{"an empty file", write("empty.db", nil), "not an SQLite database"},
		{"half a backup", write("half.db", data[:len(data)/2]), "verify backup"},
		{"another program's database", other, "not a Patchline store"},
		{"a store from a newer controller", newer, "schema version 999"},
		{"a missing file", filepath.Join(dir, "nope.db"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(context.Background(), tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// TestRestore: the restored store is the backup's; the replaced one is
// kept whole, log included; a bad backup changes nothing.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "patchline.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	enroll(t, db, "ep-before", "acme")
	backup := saveBackup(t, db)
	enroll(t, db, "ep-after", "acme")
	// Closed without a checkpoint of everything: the newest commit may be
	// in the log only, which must move with the store it belongs to.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, path, bad); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("restore of junk: %v, want invalid", err)
	}
	if got := endpointIDs(t, path); !slices.Equal(got, []string{"ep-after", "ep-before"}) {
		t.Fatalf("after a refused restore the store has %v", got)
	}

	kept, err := Restore(ctx, path, backup)
	if err != nil {
		t.Fatal(err)
	}
	if got := endpointIDs(t, path); !slices.Equal(got, []string{"ep-before"}) {
		t.Errorf("restored store has %v, want the backup's [ep-before]", got)
	}
	restored, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := restored.Audit(ctx, 0, 100)
	restored.Close()
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.Kind != protocol.AuditRestore || !strings.Contains(string(last.Detail), backup) || !strings.Contains(string(last.Detail), kept) {
		t.Errorf("last audit entry %s %s, want a store-restored entry naming the backup and the kept store", last.Kind, last.Detail)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".restore-*"+suffix)); len(matches) > 0 {
			t.Errorf("restore left %v behind", matches)
		}
	}
	if kept == "" {
		t.Fatal("the replaced store was not kept")
	}
	if got := endpointIDs(t, kept); !slices.Equal(got, []string{"ep-after", "ep-before"}) {
		t.Errorf("kept store has %v, want both endpoints", got)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored store: %v, mode %v; want readable by the controller only", err, fi.Mode())
	}
}
