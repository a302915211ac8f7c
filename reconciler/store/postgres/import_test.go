package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// importRows is one table for Import, from rows written out.
func importRows(name string, columns []string, rows ...[]any) ImportTable {
	return ImportTable{Name: name, Columns: columns, Rows: pgx.CopyFromRows(rows), Count: int64(len(rows))}
}

var (
	endpointColumns = []string{"id", "client", "hostname", "node_key_hash", "enrolled_at", "os_family", "os_version",
		"labels", "last_seen", "reboot_pending", "job_seq", "report_seq"}
	auditColumns = []string{"id", "at", "kind", "client", "endpoint", "revision", "job", "detail"}
)

// endpointRow is an endpoint as an export hands it out.
func endpointRow(id string) []any {
	return []any{id, "acme", id + ".local", []byte("hash-" + id), t0.UnixNano(), "windows", "11",
		json.RawMessage(`{"ring":"canary"}`), t0.Add(time.Hour).UnixNano(), true, int64(7), int64(3)}
}

// auditRow is an audit entry as an export hands it out.
func auditRow(id int64, kind protocol.AuditKind) []any {
	return []any{id, t0.Add(time.Duration(id) * time.Minute).UnixNano(), string(kind), "acme", "", "c0ffee", "", json.RawMessage(`{"n": 1}`)}
}

// TestImportKeepsIDsAndMovesSequences: what Import copies reads back as
// the store's own, audit ids are kept, and the next entry is numbered
// after them.
func TestImportKeepsIDsAndMovesSequences(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	err := db.Import(ctx, []ImportTable{
		importRows("endpoints", endpointColumns, endpointRow("ep-1"), endpointRow("ep-2")),
		importRows("audit", auditColumns, auditRow(5, protocol.AuditRevisionApplied), auditRow(9, protocol.AuditRevisionApplied)),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.EndpointByID(ctx, "ep-2")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Enrollment{ID: "ep-2", Client: "acme", Hostname: "ep-2.local", NodeKeyHash: []byte("hash-ep-2"), EnrolledAt: t0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("imported endpoint (-want +got):\n%s", diff)
	}
	seqs, err := db.LastJobSeqs(ctx, "acme")
	if err != nil || seqs["ep-1"] != 7 {
		t.Errorf("job numbers %v, %v; want ep-1's 7 kept", seqs, err)
	}
	if err := db.AppendAudit(ctx, protocol.AuditEntry{At: t0.Add(time.Hour), Kind: protocol.AuditRevisionApplied}); err != nil {
		t.Fatal(err)
	}
	entries, err := db.Audit(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range entries {
		ids = append(ids, e.ID)
	}
	if diff := cmp.Diff([]int64{5, 9, 10}, ids); diff != "" {
		t.Errorf("audit ids (-want +got):\n%s", diff)
	}
	if string(entries[0].Detail) != `{"n": 1}` {
		t.Errorf("detail %s, want it byte for byte", entries[0].Detail)
	}
}

// TestImportIsAllOrNothing: a refused import leaves the database as it
// was.
func TestImportIsAllOrNothing(t *testing.T) {
	tests := []struct {
		name    string
		before  func(t *testing.T, db *DB)
		tables  []ImportTable
		want    string
		wantErr error
	}{
		{
			name:   "a database with an endpoint",
			before: func(t *testing.T, db *DB) { enrollTest(t, db, "ep-9") },
			tables: []ImportTable{importRows("endpoints", endpointColumns, endpointRow("ep-1"))},
			want:   "the target database already holds 1 endpoints, 1 rows in audit: migrate only into an empty database", wantErr: ErrNotEmpty,
		},
		{
			name: "a database with audit entries only",
			before: func(t *testing.T, db *DB) {
				if err := db.AppendAudit(context.Background(), protocol.AuditEntry{At: t0, Kind: protocol.AuditRevisionApplied}); err != nil {
					t.Fatal(err)
				}
			},
			tables: []ImportTable{importRows("endpoints", endpointColumns, endpointRow("ep-1"))},
			want:   "already holds 1 rows in audit", wantErr: ErrNotEmpty,
		},
		{
			name: "a row that breaks a rule of the schema",
			tables: []ImportTable{
				importRows("endpoints", endpointColumns, endpointRow("ep-1")),
				importRows("audit", auditColumns, auditRow(1, "x"), auditRow(1, "y")),
			},
			want: "copy audit",
		},
		{
			name: "fewer rows than the source counted",
			tables: []ImportTable{{
				Name: "endpoints", Columns: endpointColumns, Count: 2,
				Rows: pgx.CopyFromRows([][]any{endpointRow("ep-1")}),
			}},
			want: "endpoints holds 1 rows after the copy, the source 2: nothing was imported",
		},
		{
			name:    "a table the schema does not have",
			tables:  []ImportTable{importRows("endpoints", endpointColumns, endpointRow("ep-1")), importRows("gadgets", []string{"id"}, []any{"g"})},
			want:    "the PostgreSQL schema has no table gadgets",
			wantErr: store.ErrInvalid,
		},
		{
			name:    "a column the schema does not have",
			tables:  []ImportTable{importRows("endpoints", append(endpointColumns[:len(endpointColumns):len(endpointColumns)], "colour"), append(endpointRow("ep-1"), "blue"))},
			want:    "the PostgreSQL table endpoints has no column colour",
			wantErr: store.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			if tt.before != nil {
				tt.before(t, db)
			}
			before := counts(t, db)
			err := db.Import(context.Background(), tt.tables)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import = %v, want an error containing %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Import = %v, want it to wrap %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(before, counts(t, db)); diff != "" {
				t.Errorf("rows per table changed (-before +after):\n%s", diff)
			}
		})
	}
}

func enrollTest(t *testing.T, db *DB, id string) {
	t.Helper()
	err := db.Enroll(context.Background(), store.Enrollment{ID: id, Client: "acme", Hostname: id, NodeKeyHash: []byte("h-" + id), EnrolledAt: t0})
	if err != nil {
		t.Fatal(err)
	}
}

// counts is how many rows each table of db holds.
func counts(t *testing.T, db *DB) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	out := map[string]int64{}
	err := db.readTx(ctx, func(tx pgx.Tx) error {
		s, err := readSchema(ctx, tx)
		if err != nil {
			return err
		}
		for _, table := range s.tables {
			var n int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
				return err
			}
			out[table] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
