package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// storeWithData writes a store of a few hundred pages (endpoints and
// their reports), closes it and returns its path and page size.
func storeWithData(t *testing.T) (string, int) {
	t.Helper()
	db, p := openTest(t)
	ctx := context.Background()
	for i := range 200 {
		id := fmt.Sprintf("acme-ws-%03d", i)
		enroll(t, db, id, "acme")
		var updates []*protocol.Update
		for u := range 10 {
			updates = append(updates, &protocol.Update{ID: fmt.Sprintf("KB50%02d", u), Source: "windows-update", Name: fmt.Sprintf("KB50%02d", u),
				Title: "2026-03 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems", Category: "security", Severity: "critical"})
		}
		if err := db.ReplaceInventory(ctx, store.Report{Endpoint: id, Hostname: id, OS: protocol.OS{Family: "windows"}, Updates: updates, At: t0, Seq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var pageSize int
	if err := db.read.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("a closed store kept a write-ahead log of %d bytes; the test damages the store file alone", fi.Size())
	}
	return p, pageSize
}

// TestOpenRefusesADamagedStore: a store file whose pages were overwritten
// while it was closed (a disk fault, a bad copy) is refused with
// ErrDamaged before anything is written to it.
func TestOpenRefusesADamagedStore(t *testing.T) {
	tests := []struct {
		name string
		// pages picks the pages (0-based) to overwrite from their count.
		pages func(n int) []int
	}{
		{"a page in the middle", func(n int) []int { return []int{n / 2} }},
		{"the last page", func(n int) []int { return []int{n - 1} }},
		{"the middle and last pages", func(n int) []int { return []int{n / 2, n - 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, pageSize := storeWithData(t)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			n := len(b) / pageSize
			if n < 10 {
				t.Fatalf("the store has %d pages; the test wants more to damage", n)
			}
			garbage := bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, pageSize/4)
			for _, page := range tt.pages(n) {
				copy(b[page*pageSize:], garbage)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(context.Background(), p)
			if err == nil {
				db.Close()
				t.Fatalf("Open of a store with %s overwritten succeeded", tt.name)
			}
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("Open = %v, want ErrDamaged", err)
			}
			t.Logf("Open: %v", err)
		})
	}
}

// TestOpenAcceptsAnUndamagedStore: the quick check passes a healthy store
// again and again, and a new, empty one.
func TestOpenAcceptsAnUndamagedStore(t *testing.T) {
	p, _ := storeWithData(t)
	for range 2 {
		db, err := Open(context.Background(), p)
		if err != nil {
			t.Fatalf("Open of a healthy store: %v", err)
		}
		db.Close()
	}
}

// TestHaltsMigrationKeepsAuditedHalts: a store written before the halts
// table knows, after the upgrade, the halts its audit log left standing,
// so the first re-plan after the upgrade audits none of them again.
func TestHaltsMigrationKeepsAuditedHalts(t *testing.T) {
	ctx := context.Background()
	// The migrations before the one that adds the halts table.
	before := fstest.MapFS{}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if path.Base(name) >= "0005" {
			continue
		}
		b, err := fs.ReadFile(migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = &fstest.MapFile{Data: b}
	}
	p := t.TempDir() + "/old.db"
	if err := createFile(p); err != nil {
		t.Fatal(err)
	}
	old, err := openWrite(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, old, before); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ kind, client, detail string }{
		{"halt", "acme", `{"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`},
		{"halt", "acme", `{"update":"KB2","ring":"canary","reason":"2 of 2 failed"}`},
		{"halt", "acme", `{"update":"KB1","ring":"canary","reason":"1 of 2 failed"}`}, // audited again by a restart
		{"resume", "acme", `{"update":"KB2","ring":"canary","reason":"2 of 2 failed"}`},
		{"halt", "globex", `{"update":"KB1","ring":"broad","reason":"5 of 9 failed"}`},
		{"resume", "globex", ``},
		{"job-created", "acme", `{"update":"KB3","ring":"canary"}`},
	} {
		var detail any
		if e.detail != "" {
			detail = e.detail
		}
		if _, err := old.ExecContext(ctx, `INSERT INTO audit (at, kind, client, endpoint, revision, job, detail) VALUES (?, ?, ?, '', 'r1', '', ?)`,
			t0.UnixNano(), e.kind, e.client, detail); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
