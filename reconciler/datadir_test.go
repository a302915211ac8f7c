package reconciler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/signingkey"
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

// TestDataDirModesFixed: a data directory, job-signing key or store that
// group or others can read (restored under a loose umask) is made private
// to patchd at start, with a warning naming the path and the mode it had;
// private ones are left alone, without a warning.
func TestDataDirModesFixed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows reports made-up permission bits")
	}
	tests := []struct {
		name string
		// loosen gives files of the data directory (by name, "" for the
		// directory itself) a mode.
		loosen map[string]os.FileMode
	}{
		{name: "everything private already"},
		{name: "data directory readable by everyone", loosen: map[string]os.FileMode{"": 0o755}},
		{name: "data directory open to its group", loosen: map[string]os.FileMode{"": 0o770}},
		{name: "job-signing key readable by everyone", loosen: map[string]os.FileMode{signingKeyFile: 0o644}},
		{name: "store and its log readable by the group", loosen: map[string]os.FileMode{storeFile: 0o640, storeFile + "-wal": 0o640}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			open := func(log *slog.Logger) (close func() error) {
				t.Helper()
				c := &Controller{cfg: Config{DataDir: dir}, log: log, clock: clock.Real{}, reg: prometheus.NewRegistry()}
				if _, err := c.openDataDir(context.Background()); err != nil {
					t.Fatal(err)
				}
				return c.store.Close
			}
			// A first start lays the files down; the store's log is gone
			// once it closes, as after a clean stop.
			if err := open(slog.New(slog.DiscardHandler))(); err != nil {
				t.Fatal(err)
			}
			for name, mode := range tt.loosen {
				p := filepath.Join(dir, name)
				if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
					if err := os.WriteFile(p, nil, mode); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
			}

			var logs bytes.Buffer
			defer open(slog.New(slog.NewTextHandler(&logs, nil)))()
			for _, name := range []string{"", signingKeyFile, storeFile, storeFile + "-wal"} {
				p, want := filepath.Join(dir, name), os.FileMode(0o600)
				if name == "" {
					want = 0o700
				}
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s: mode %04o, want %04o", p, got, want)
				}
				mode, loosened := tt.loosen[name]
				warned := strings.Contains(logs.String(), fmt.Sprintf("path=%s mode=%04o", p, mode))
				if warned != loosened {
					t.Errorf("%s: warned %v, want %v; log:\n%s", p, warned, loosened, logs.String())
				}
			}
			if len(tt.loosen) == 0 && logs.Len() != 0 {
				t.Errorf("warnings for a private data directory:\n%s", logs.String())
			}
		})
	}
}

// TestCheckStoreKept: a data directory with a job-signing key had a
// store; patchd refuses to start without it (or with an empty file in its
// place) unless told to start empty. A new data directory starts.
func TestCheckStoreKept(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string // name in the data dir → content
		initStore bool
		wantErr   string
	}{
		{name: "a new data directory"},
		{name: "a store without a key", files: map[string]string{storeFile: "SQLite format 3"}},
		{name: "a key and a store", files: map[string]string{signingKeyFile: "key", storeFile: "SQLite format 3"}},
		{name: "a key and a store's log only", files: map[string]string{signingKeyFile: "key", storeFile: "", storeFile + "-wal": "frames"}},
		{name: "a key and no store", files: map[string]string{signingKeyFile: "key"},
			wantErr: "is missing: this data directory had a store; restore it or pass --init-store to start empty"},
		{name: "a key and an empty store", files: map[string]string{signingKeyFile: "key", storeFile: ""},
			wantErr: "is empty: this data directory had a store; restore it or pass --init-store to start empty"},
		{name: "a key and no store, with --init-store", files: map[string]string{signingKeyFile: "key"}, initStore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := checkStoreKept(dir, tt.initStore)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			for _, cmd := range []string{"patchd restore FILE --data-dir " + dir, "patchctl backup"} {
				if !strings.Contains(err.Error(), cmd) {
					t.Errorf("error %q does not name %q", err, cmd)
				}
			}
		})
	}
}

// TestDataDirKeyServesAsSigningKey: the key patchd makes in a data
// directory is a --signing-key file, so an install that moves to
// PostgreSQL keeps the key its agents pinned.
func TestDataDirKeyServesAsSigningKey(t *testing.T) {
	dir := t.TempDir()
	key, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := signingkey.Load(filepath.Join(dir, signingKeyFile))
	if err != nil {
		t.Fatalf("the data directory's key does not load as --signing-key: %v", err)
	}
	if !key.Equal(loaded) {
		t.Error("the data directory's key loads as another key")
	}
}

// TestCheckDataDirKey: with PostgreSQL, a data directory that holds the
// embedded store's key is accepted only with that same key.
func TestCheckDataDirKey(t *testing.T) {
	dirWith := func(data []byte) string {
		dir := t.TempDir()
		if data != nil {
			if err := os.WriteFile(filepath.Join(dir, signingKeyFile), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	key, _ := signingkey.Generate()
	other, _ := signingkey.Generate()
	tests := []struct {
		name string
		dir  string
		ok   bool
	}{
		{"a data directory without a key", dirWith(nil), true},
		{"the same key", dirWith(signingkey.Encode(key)), true},
		{"another key", dirWith(signingkey.Encode(other)), false},
		{"a file that is no key", dirWith([]byte("junk")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkDataDirKey(tt.dir, key)
			if (err == nil) != tt.ok {
				t.Fatalf("checkDataDirKey: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "Give --signing-key "+filepath.Join(tt.dir, signingKeyFile)) {
				t.Errorf("refusal %q does not say which key to give", err)
			}
		})
	}
}
