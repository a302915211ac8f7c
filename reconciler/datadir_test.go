package reconciler

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); !errors.Is(err, errDataDirInUse) {
		t.Fatalf("second lock: %v, want %v", err, errDataDirInUse)
	}
	if _, err := Restore(context.Background(), dir, filepath.Join(dir, "any.db")); !errors.Is(err, errDataDirInUse) {
		t.Errorf("restore under a running patchd: %v, want %v", err, errDataDirInUse)
	}
	unlock()
	unlock, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock()
}

// TestRestoreIntoDataDir: a backup taken from one data directory's store
// restores into it, keeping the replaced store beside it.
func TestRestoreIntoDataDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(id string) {
		t.Helper()
		if err := db.Enroll(ctx, store.Enrollment{ID: id, Client: "acme", Hostname: id, NodeKeyHash: []byte("k"), EnrolledAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	enroll("ep-1")
	backup := saveBackup(t, db)
	enroll("ep-2")
	db.Close()

	kept, err := Restore(ctx, dir, backup)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(kept) != dir {
		t.Errorf("replaced store kept as %s, want it in the data directory", kept)
	}
	db, err = sqlite.Open(ctx, filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.EndpointByID(ctx, "ep-1"); err != nil {
		t.Errorf("restored store lacks ep-1: %v", err)
	}
	if _, err := db.EndpointByID(ctx, "ep-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("restored store has ep-2, enrolled after the backup: %v", err)
	}
}

// TestRestoreOntoANewMachine: a backup restores into a data directory that
// does not exist yet.
func TestRestoreOntoANewMachine(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), storeFile))
	if err != nil {
		t.Fatal(err)
	}
	backup := saveBackup(t, db)
	db.Close()
	dir := filepath.Join(t.TempDir(), "var", "lib", "patchd")
	kept, err := Restore(ctx, dir, backup)
	if err != nil || kept != "" {
		t.Fatalf("restore into a new directory: kept %q, %v", kept, err)
	}
	if err := sqlite.Verify(ctx, filepath.Join(dir, storeFile)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory %v, %v; want it private to patchd", fi.Mode(), err)
	}
}

// saveBackup writes db's backup to a file of its own and returns its path.
func saveBackup(t *testing.T, db *sqlite.DB) string {
	t.Helper()
	rc, _, err := db.Backup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
