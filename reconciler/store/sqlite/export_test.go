package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// TestExportCoversTheSchema: an export reads every table and column of
// the newest schema, so nothing is left behind by a copy; a migration
// that adds one fails here until the export knows it.
func TestExportCoversTheSchema(t *testing.T) {
	db, _ := openTest(t)
	rows, err := db.read.Query(`SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT IN ('schema_version', 'sqlite_sequence') ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	schema := map[string][]string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		schema[name] = nil
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for table := range schema {
		cols, err := db.read.Query(`SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var c string
			if err := cols.Scan(&c); err != nil {
				t.Fatal(err)
			}
			schema[table] = append(schema[table], c)
		}
		cols.Close()
		slices.Sort(schema[table])
	}
	exported := map[string][]string{}
	for _, tbl := range exportTables {
		for _, c := range tbl.columns {
			exported[tbl.name] = append(exported[tbl.name], c.name)
		}
		slices.Sort(exported[tbl.name])
	}
	if diff := cmp.Diff(schema, exported); diff != "" {
		t.Errorf("tables and columns (-schema +export):\n%s", diff)
	}
}

// fillStore writes one of everything a store keeps through its API.
func fillStore(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	enroll(t, db, "ep-1", "acme")
	enroll(t, db, "ep-2", "acme")
	// curl has no release time: the fleet's first sight of it stands in.
	curl := &protocol.Update{ID: "curl@8.5.0-2", Source: "apt", Name: "curl", Version: "8.5.0-2", Category: "security"}
	rep := report("ep-1", t0.Add(time.Minute), kb("KB1", false), deb("openssl", "3.0.15-1", "3.0.14-1"), curl)
	rep.Seq = 4
	replace(t, db, rep)
	jobs := createJobs(t, db, "acme", t0.Add(2*time.Minute), newJob("ep-1", "acme", "key-1", "KB1"))
	if _, err := db.RecordResult(ctx, jobs[0].ID, "ep-1", []store.UpdateResult{{Update: "KB1", Result: protocol.ResultFailed, Error: "0x80070005", Output: "access denied"}}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordRevisions(ctx, []store.Revision{
		{Hash: "c0ffee", Status: store.RevisionApplied, At: t0},
		{Hash: "bad", Status: store.RevisionRefused, At: t0.Add(time.Minute), Client: "acme", Problems: []string{"acme/fleet.cue:3:1: no"}, Reason: "invalid"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordHalts(ctx, "acme", "c0ffee", []protocol.Halt{{Update: "KB1", Ring: "canary", Reason: "2 of 2 failed"}}, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ciHash := sha256.Sum256([]byte("ci-secret"))
	if err := db.CreateToken(ctx, store.Token{Name: "ci", Hash: ciHash[:], Scopes: []protocol.Scope{protocol.ScopeRead}, Clients: []string{"acme"}, CreatedAt: t0, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeEndpoint(ctx, "ep-2", "admin", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// exportAll reads every table of the export at path: its rows' values
// by table.
func exportAll(t *testing.T, path string) map[string][][]any {
	t.Helper()
	ctx := context.Background()
	e, err := OpenExport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out := map[string][][]any{}
	for _, table := range e.Tables() {
		want, err := e.Count(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := e.Rows(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != len(rows.Columns()) {
				t.Fatalf("%s: %d values for %d columns", table, len(v), len(rows.Columns()))
			}
			out[table] = append(out[table], v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if int64(len(out[table])) != want {
			t.Errorf("%s: read %d rows, Count says %d", table, len(out[table]), want)
		}
	}
	return out
}

// TestExportReadsEveryTable: every table of a store in use is read, each
// value handed out as a plain Go value, and the file is left as it was.
func TestExportReadsEveryTable(t *testing.T) {
	db, path := openTest(t)
	fillStore(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := digest(t, path)
	got := exportAll(t, path)
	if after := digest(t, path); before != after {
		t.Errorf("the export changed the store file")
	}
	// Reading a store in WAL mode takes its shared-memory index and log,
	// which SQLite creates, owned as the store, when they are missing; the
	// log stays empty.
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("the export wrote %d bytes to the store's log", fi.Size())
	}
	for _, table := range []string{"endpoints", "updates", "first_seen", "jobs", "attempts", "revisions", "audit", "tokens", "halts"} {
		if len(got[table]) == 0 {
			t.Errorf("no rows read from %s", table)
		}
	}
	ep := got["endpoints"][0]
	// id, …, labels, last_seen, reboot_pending, job_seq, report_seq, revoked_at, revoked_by, job_seq_unknown
	if ep[0] != "ep-1" || !cmp.Equal(ep[3], []byte("hash-ep-1")) || string(ep[7].(json.RawMessage)) != `{"site":"hq"}` ||
		ep[9] != false || ep[10] != int64(1) || ep[11] != int64(4) || ep[12] != nil || ep[14] != true {
		t.Errorf("endpoint ep-1 read as %v", ep)
	}
	if revoked := got["endpoints"][1]; revoked[12] != t0.Add(5*time.Minute).UnixNano() || revoked[13] != "admin" {
		t.Errorf("revoked endpoint ep-2 read as %v", revoked)
	}
	up := got["updates"][0] // KB1
	if up[1] != "KB1" || up[9] != 9.8 || !cmp.Equal(up[10], []string{"CVE-2026-0001", "CVE-2026-0002"}) || up[11] != true || up[14] != nil {
		t.Errorf("update KB1 read as %v", up)
	}
	job := got["jobs"][0]
	if !cmp.Equal(job[5], []string{"KB1"}) || job[13] != string(store.JobDone) || len(job[11].([]byte)) == 0 || len(job[12].([]byte)) == 0 {
		t.Errorf("job read as %v", job)
	}
	if rev := got["revisions"][1]; !cmp.Equal(rev[5], []string{"acme/fleet.cue:3:1: no"}) || rev[6] != "invalid" {
		t.Errorf("refused revision read as %v", rev)
	}
	if tok := got["tokens"][0]; !cmp.Equal(tok[2], []string{"read"}) || !cmp.Equal(tok[3], []string{"acme"}) || tok[7] != nil {
		t.Errorf("token read as %v", tok)
	}
	var lastID int64
	for _, a := range got["audit"] {
		if id := a[0].(int64); id <= lastID {
			t.Errorf("audit ids out of order: %d after %d", id, lastID)
		} else {
			lastID = id
		}
		if a[7] != nil && !json.Valid(a[7].(json.RawMessage)) {
			t.Errorf("audit detail %s is not JSON", a[7])
		}
	}
}

// TestExportIsOfOneMoment: what a running patchd writes after the export
// began is not in it.
func TestExportIsOfOneMoment(t *testing.T) {
	db, path := openTest(t)
	enroll(t, db, "ep-1", "acme")
	ctx := context.Background()
	e, err := OpenExport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	enroll(t, db, "ep-2", "acme")
	if n, err := e.Count(ctx, "endpoints"); err != nil || n != 1 {
		t.Errorf("endpoints counted %d, %v; want the 1 there was when the export began", n, err)
	}
	rows, err := e.Rows(ctx, "endpoints")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil || n != 1 {
		t.Errorf("read %d endpoints, %v; want 1", n, err)
	}
}

// TestExportRefuses: a file that is not a store of this program's schema
// version is refused, and nothing is created.
func TestExportRefuses(t *testing.T) {
	dir := t.TempDir()
	// store makes a store, then runs change on its file.
	store := func(name, change string) string {
		path := filepath.Join(dir, name)
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Exec(change); err != nil {
			t.Fatal(err)
		}
		return path
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("not a database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.db")
	tests := []struct {
		name, path, want string
		wantErr          error
	}{
		{
			name: "a store of an older patchd", path: store("old.db", `DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)`),
			want: "run patchd of this version on the store once", wantErr: ErrSchemaVersion,
		},
		{
			name: "a store of a newer patchd", path: store("new.db", `INSERT INTO schema_version (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`),
			want: "schema version 999, newer than the", wantErr: ErrSchemaVersion,
		},
		{name: "a text file", path: notes, want: "not a database"},
		{name: "a missing file", path: missing, want: "no such file"},
		{name: "a directory", path: dir, want: "not a file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := OpenExport(context.Background(), tt.path)
			if err == nil {
				e.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("OpenExport = %v, want an error containing %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("OpenExport = %v, want it to wrap %v", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the export created %s (%v)", missing, err)
	}
}

// digest is the SHA-256 of the file at path.
func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
