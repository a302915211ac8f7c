package reconciler

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// TestBootstrapAdmin: the first patchd without a secrets file makes the
// admin token and its file; a replica on a database whose token another
// replica made, and a patchd whose file was removed, make none and say
// where the token is or what to do.
func TestBootstrapAdmin(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "patchd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	controller := func(database string) (*Controller, *bytes.Buffer, *bytes.Buffer) {
		var log, notice bytes.Buffer
		cfg := Config{DataDir: t.TempDir(), Database: database, ReplicaName: "patchd-a", Notice: &notice}
		return &Controller{cfg: cfg, log: slog.New(slog.NewTextHandler(&log, nil)), clock: clock.NewFake(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)), ln: ln}, &log, &notice
	}

	first, _, notice := controller("postgres://db/patchline")
	if err := first.bootstrapAdmin(ctx, db); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(first.cfg.DataDir, AdminTokenFile)
	if !strings.Contains(notice.String(), "patchctl status --controller http://"+ln.Addr().String()+" --token-file "+file) {
		t.Errorf("notice:\n%s", notice.String())
	}
	tokens, err := db.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 1 || tokens[0].Name != BootstrapAdminToken || tokens[0].CreatedBy != "patchd patchd-a" {
		t.Fatalf("tokens %+v", tokens)
	}
	secret, err := os.ReadFile(file)
	if err != nil || !tokenFileHolds(secret, tokens[0]) {
		t.Fatalf("the file does not hold the stored token: %v", err)
	}

	for _, tc := range []struct {
		name, database, wantLog string
		file                    []byte
	}{
		{"the first patchd again", "", "the admin token is in its file", secret},
		{"another replica on the database", "postgres://db/patchline", "made by another patchd on this database", nil},
		{"its file removed", "", "the admin token's file is gone", nil},
		{"its file holding another token", "", "does not hold the stored admin token", []byte("plt_other\n")},
	} {
		c, log, notice := controller(tc.database)
		path := filepath.Join(c.cfg.DataDir, AdminTokenFile)
		if tc.file != nil {
			if err := os.WriteFile(path, tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.bootstrapAdmin(ctx, db); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !strings.Contains(log.String(), tc.wantLog) || notice.Len() != 0 {
			t.Errorf("%s: log %q, notice %q; want the log to say %q", tc.name, log.String(), notice.String(), tc.wantLog)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, tc.file) {
			t.Errorf("%s: the file holds %q, want %q", tc.name, got, tc.file)
		}
	}
	if tokens, err := db.Tokens(ctx); err != nil || len(tokens) != 1 {
		t.Errorf("tokens after the later starts: %+v, %v; want bootstrap-admin alone", tokens, err)
	}
}
