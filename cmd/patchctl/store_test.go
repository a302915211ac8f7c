package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
	"github.com/patchline/patchline/schema"
)

// m0 is when the store being migrated was written: a Tuesday evening.
var m0 = time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)

// singleBox is a data directory of a patchd on SQLite, written through
// the store's API as patchd writes it: enrolled endpoints (one revoked)
// with inventories, jobs done, leased and open with signed payloads,
// results, policy revisions applied and refused, a halt, tokens (one
// revoked) and the audit log of it all. It returns the store's path;
// the store is closed.
func singleBox(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "patchline.db")
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, priv, err := ed25519.GenerateKey(nil)
	must(err)

	must(db.RecordRevisions(ctx, []store.Revision{
		{Hash: "a1b2c3", Status: store.RevisionApplied, At: m0},
		{Hash: "a1b2c3", Status: store.RevisionApplied, At: m0, Client: "acme"},
		{Hash: "d4e5f6", Status: store.RevisionRefused, At: m0.Add(time.Minute), Client: "globex", Reason: "invalid",
			Problems: []string{"clients/globex/rings.cue:4:2: ring canary: soak: invalid duration"}},
	}))
	// globex's server enrolls with an enrollment token, whose labels it
	// keeps; acme's old token is revoked.
	servers, old := sha256.Sum256([]byte("ple_globex-servers")), sha256.Sum256([]byte("ple_acme-old"))
	tok, err := db.CreateEnrollToken(ctx, store.EnrollToken{Name: "globex-servers", Client: "globex", Hash: servers[:],
		Labels: map[string]string{"ring": "broad"}, ExpiresAt: m0.Add(7 * 24 * time.Hour), MaxUses: 5, CreatedAt: m0, CreatedBy: protocol.BootstrapTokenName})
	must(err)
	oldTok, err := db.CreateEnrollToken(ctx, store.EnrollToken{Name: "acme-old", Client: "acme", Hash: old[:], CreatedAt: m0, CreatedBy: protocol.BootstrapTokenName})
	must(err)
	_, err = db.RevokeEnrollToken(ctx, oldTok.ID, protocol.BootstrapTokenName, m0.Add(time.Minute))
	must(err)
	for i, ep := range []struct{ id, client string }{{"acme-ws-001", "acme"}, {"acme-ws-002", "acme"}, {"globex-sql01", "globex"}} {
		hash := sha256.Sum256([]byte("node-key-" + ep.id))
		e := store.Enrollment{ID: ep.id, Client: ep.client, Hostname: strings.ToUpper(ep.id), NodeKeyHash: hash[:], EnrolledAt: m0.Add(time.Duration(i) * time.Second)}
		if ep.client == "globex" {
			e.Token, e.Labels = tok.ID, tok.Labels
		}
		must(db.Enroll(ctx, e))
		must(db.ReplaceInventory(ctx, store.Report{
			Endpoint: ep.id, Hostname: strings.ToUpper(ep.id), OS: protocol.OS{Family: "windows", Version: "11 24H2"},
			Labels: map[string]string{"ring": "canary", "site": "leeds"}, RebootPending: i == 1, At: m0.Add(2 * time.Minute), Seq: 3,
			Updates: []*protocol.Update{
				{ID: "KB5034441", Source: "windows-update", Name: "KB5034441", Title: "2026-03 Cumulative Update", Version: "1",
					Category: "security", Severity: "critical", CVSS: 9.8, CVEs: []string{"CVE-2026-21412"}, KnownExploited: true,
					Released: m0.Add(-72 * time.Hour), RebootRequired: true},
				{ID: "Mozilla.Firefox@124.0", Source: "winget", Name: "Mozilla.Firefox", Version: "124.0", InstalledVersion: "123.0",
					Category: "feature"},
				{ID: "KB5034000", Source: "windows-update", Name: "KB5034000", Version: "1", Category: "security", Installed: true,
					Released: m0.Add(-900 * time.Hour)},
			},
		}))
	}
	// Three jobs for acme-ws-001: done, leased, open; one open for
	// acme-ws-002, which is then revoked.
	var jobs []store.Job
	seqs, err := db.LastJobSeqs(ctx, "acme")
	must(err)
	for i, j := range []struct{ ep, key string }{{"acme-ws-001", "k1"}, {"acme-ws-001", "k2"}, {"acme-ws-001", "k3"}, {"acme-ws-002", "k4"}} {
		seqs[j.ep]++
		job := store.Job{Job: plan.Job{Endpoint: j.ep, Client: "acme", Ring: "canary", Updates: []string{"KB5034441"},
			NotAfter: m0.Add(3 * time.Hour), Reboot: schema.RebootIfRequired, RebootDeadline: "4h0m0s", Revision: "a1b2c3", IdempotencyKey: j.key},
			ID: fmt.Sprintf("job-%d", i+1), Seq: seqs[j.ep]}
		job.Payload, err = json.Marshal(protocol.JobPayload{ID: job.ID, Endpoint: j.ep, Seq: job.Seq, NotAfter: job.NotAfter, IdempotencyKey: j.key})
		must(err)
		job.Signature = ed25519.Sign(priv, job.Payload)
		jobs = append(jobs, job)
	}
	_, err = db.CreateJobs(ctx, "acme", jobs, m0.Add(3*time.Minute))
	must(err)
	must(db.LeaseJob(ctx, "job-1", m0.Add(time.Hour)))
	_, err = db.RecordResult(ctx, "job-1", "acme-ws-001", []store.UpdateResult{
		{Update: "KB5034441", Result: protocol.ResultFailed, Error: "0x80070005", Output: "Access is denied.", At: m0.Add(5 * time.Minute)}}, m0.Add(5*time.Minute))
	must(err)
	must(db.LeaseJob(ctx, "job-2", m0.Add(time.Hour)))
	_, err = db.RecordHalts(ctx, "acme", "a1b2c3", []protocol.Halt{{Update: "KB5034441", Ring: "canary", Reason: "1 of 1 failed (threshold 0%)"}}, m0.Add(6*time.Minute))
	must(err)
	for _, name := range []string{"ci-acme", "grafana"} {
		hash := sha256.Sum256([]byte("secret-" + name))
		must(db.CreateToken(ctx, store.Token{Name: name, Hash: hash[:], Scopes: []protocol.Scope{protocol.ScopeRead}, Clients: []string{"acme"}, CreatedAt: m0, CreatedBy: protocol.BootstrapTokenName}))
	}
	_, err = db.RevokeToken(ctx, "grafana", protocol.BootstrapTokenName, m0.Add(7*time.Minute))
	must(err)
	_, err = db.RevokeEndpoint(ctx, "acme-ws-002", protocol.BootstrapTokenName, m0.Add(8*time.Minute))
	must(err)
	must(db.AppendAudit(ctx, protocol.AuditEntry{At: m0.Add(9 * time.Minute), Kind: protocol.AuditRevisionApplied, Client: "acme", Revision: "a1b2c3",
		Detail: json.RawMessage(`{"note":  "kept byte for byte"}`)}))
	return path
}

// TestStoreMigrate copies a single-box store into an empty PostgreSQL
// database: the PostgreSQL store then answers as the SQLite one did,
// every row of every table is there, and ids and job numbers go on from
// where the source stopped.
func TestStoreMigrate(t *testing.T) {
	src := singleBox(t)
	// The job-signing key beside the store, as in patchd's data directory.
	keyFile := filepath.Join(filepath.Dir(src), signingKeyFile)
	if err := os.WriteFile(keyFile, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.DB(t)
	password := filepath.Join(t.TempDir(), "pg-password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "store", "migrate", "--from", "sqlite://"+src, "--to", dsn, "--to-password-file", password)
	if code != 0 {
		t.Fatalf("store migrate: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`(?m)^  endpoints +3$`, `(?m)^  jobs +4$`, `(?m)^  tokens +2$`, `(?m)^  halts +1$`,
		regexp.QuoteMeta("patchd --database '" + dsn + "' --database-password-file " + password + " --signing-key " + keyFile),
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", want, out)
		}
	}

	ctx := context.Background()
	from, err := sqlite.Open(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()

	now := m0.Add(10 * time.Minute)
	same := func(what string, a, b any, aerr, berr error) {
		t.Helper()
		if aerr != nil || berr != nil {
			t.Fatalf("%s: %v, %v", what, aerr, berr)
		}
		if diff := cmp.Diff(a, b, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-sqlite +postgres):\n%s", what, diff)
		}
	}
	s1, e1 := from.Snapshot(ctx, now)
	s2, e2 := to.Snapshot(ctx, now)
	same("snapshot", s1, s2, e1, e2)
	a1, e1 := from.Audit(ctx, 0, 1000)
	a2, e2 := to.Audit(ctx, 0, 1000)
	same("audit log", a1, a2, e1, e2)
	r1, e1 := from.Revisions(ctx, 10)
	r2, e2 := to.Revisions(ctx, 10)
	same("revisions", r1, r2, e1, e2)
	for _, id := range []string{"acme-ws-001", "acme-ws-002", "globex-sql01"} {
		en1, e1 := from.EndpointByID(ctx, id)
		en2, e2 := to.EndpointByID(ctx, id)
		same("endpoint "+id, en1, en2, e1, e2)
		for _, at := range []time.Time{now, m0.Add(90 * time.Minute)} {
			d1, e1 := from.DueJobs(ctx, id, at)
			d2, e2 := to.DueJobs(ctx, id, at)
			same("jobs due to "+id+" at "+at.Format(time.Kitchen), d1, d2, e1, e2)
		}
	}
	for _, client := range []string{"acme", "globex"} {
		l1, e1 := from.LastJobSeqs(ctx, client)
		l2, e2 := to.LastJobSeqs(ctx, client)
		same("job numbers of "+client, l1, l2, e1, e2)
	}
	sameRows(t, src, dsn)

	// What the store writes next follows what was copied.
	entry := protocol.AuditEntry{At: now, Kind: protocol.AuditRevisionApplied, Client: "globex", Revision: "0a0b0c"}
	if err := to.AppendAudit(ctx, entry); err != nil {
		t.Fatal(err)
	}
	after, err := to.Audit(ctx, a1[len(a1)-1].ID, 10)
	if err != nil || len(after) != 1 || after[0].ID != a1[len(a1)-1].ID+1 {
		t.Errorf("the next audit entry: %+v, %v; want id %d", after, err, a1[len(a1)-1].ID+1)
	}
	t1, e1 := from.EnrollTokens(ctx)
	t2, e2 := to.EnrollTokens(ctx)
	same("enrollment tokens", t1, t2, e1, e2)
	h := sha256.Sum256([]byte("ple_next"))
	next, err := to.CreateEnrollToken(ctx, store.EnrollToken{Name: "next", Client: "acme", Hash: h[:], CreatedAt: now, CreatedBy: "ops"})
	if err != nil || next.ID != t1[len(t1)-1].ID+1 {
		t.Errorf("the next enrollment token: %+v, %v; want id %d", next, err, t1[len(t1)-1].ID+1)
	}
}

// sameRows compares every table of the SQLite store at path with the
// PostgreSQL database dsn, row by row and value by value.
func sameRows(t *testing.T, path, dsn string) {
	t.Helper()
	ctx := context.Background()
	exp, err := sqlite.OpenExport(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, table := range exp.Tables() {
		rows, err := exp.Rows(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, canonicalRow(t, v))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		cols := rows.Columns()
		pg, err := conn.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for pg.Next() {
			v, err := pg.Values()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, canonicalRow(t, v))
		}
		if err := pg.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(want)
		slices.Sort(got)
		if len(want) == 0 {
			t.Errorf("%s: the source has no rows; the test store should fill every table", table)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s rows (-sqlite +postgres), columns %v:\n%s", table, cols, diff)
		}
	}
}

// canonicalRow writes a row's values the same way whichever store they
// come from: JSON documents decoded (jsonb does not keep spacing), lists
// as lists of strings.
func canonicalRow(t *testing.T, values []any) string {
	t.Helper()
	out := make([]any, len(values))
	for i, v := range values {
		switch v := v.(type) {
		case json.RawMessage:
			var doc any
			if err := json.Unmarshal(v, &doc); err != nil {
				t.Fatal(err)
			}
			out[i] = doc
		case []any: // a PostgreSQL array
			list := make([]string, len(v))
			for j, s := range v {
				list[j] = s.(string)
			}
			out[i] = list
		default:
			out[i] = v
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStoreMigrateRefuses: a target that holds data, a source of another
// schema version, and a --from that is not a SQLite store's URL are
// refused, and nothing is written.
func TestStoreMigrateRefuses(t *testing.T) {
	src := singleBox(t)
	used := pgtest.DB(t)
	if code, _, errOut := run(t, "store", "migrate", "--from", "sqlite://"+src, "--to", used); code != 0 {
		t.Fatalf("first migration: exit %d: %s", code, errOut)
	}
	old := filepath.Join(t.TempDir(), "old.db")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, data, 0o600); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	empty := pgtest.DB(t)
	emptyPassword := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyPassword, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
		// fresh is a target database that must still be empty.
		fresh string
	}{
		{name: "a target that holds a store", args: []string{"--from", "sqlite://" + src, "--to", used},
			want: "the target database already holds 3 endpoints"},
		{name: "a source of an older schema", args: []string{"--from", "sqlite://" + old, "--to", empty},
			want: "run patchd of this version on the store once", fresh: empty},
		{name: "a source that is not there", args: []string{"--from", "sqlite://" + src + ".gone", "--to", empty},
			want: "no such file", fresh: empty},
		{name: "sqlite:/PATH names the same file as sqlite:///PATH", args: []string{"--from", "sqlite:" + src, "--to", pgtest.DB(t)}},
		{name: "a source as a host name", args: []string{"--from", "sqlite://var/lib/patchd/patchline.db", "--to", empty},
			want: "starts with a third slash", fresh: empty},
		{name: "a source that is not a SQLite URL", args: []string{"--from", src, "--to", empty},
			want: "want the store as sqlite:///var/lib/patchd/patchline.db", fresh: empty},
		{name: "an empty password file", args: []string{"--from", "sqlite://" + src, "--to", empty, "--to-password-file", emptyPassword},
			want: "is empty", fresh: empty},
		{name: "a source URL without a path", args: []string{"--from", "sqlite:", "--to", empty}, want: "no path", fresh: empty},
		{name: "no target", args: []string{"--from", "sqlite://" + src}, want: `required flag(s) "to" not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, append([]string{"store", "migrate"}, tt.args...)...)
			if tt.want == "" {
				if code != 0 {
					t.Errorf("exit %d: %s", code, errOut)
				}
				return
			}
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want a refusal saying %q", code, errOut, tt.want)
			}
			if tt.fresh != "" {
				assertEmpty(t, tt.fresh)
			}
		})
	}
}

// assertEmpty checks that the database dsn holds no endpoint.
func assertEmpty(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	// A refusal before the schema was made leaves no table at all.
	err = conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'endpoints'`).Scan(&n)
	if err != nil || n == 0 {
		return
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM endpoints`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the target holds %d endpoints (%v), want none", n, err)
	}
}

// TestNextStepsHideThePassword: the patchd command migrate prints shows
// the connection string without its password.
func TestNextStepsHideThePassword(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://patchd:s3cret@db.msp.example:5432/patchline", "postgres://patchd:xxxxx@db.msp.example:5432/patchline"},
		{"postgres://patchd@db.msp.example/patchline?password=s3cret&sslmode=verify-full", "'postgres://patchd@db.msp.example/patchline?password=xxxxx&sslmode=verify-full'"},
		{"host=db.msp.example user=patchd password=s3cret dbname=patchline", "'host=db.msp.example user=patchd password=xxxxx dbname=patchline'"},
		{"host=db.msp.example password='s3 cret' dbname=patchline", "'host=db.msp.example password=xxxxx dbname=patchline'"},
		{"postgres://db.msp.example/patchline", "postgres://db.msp.example/patchline"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			got := nextSteps("/var/lib/patchd/patchline.db", tt.dsn, "")
			if !strings.Contains(got, "patchd --database "+tt.want+" --signing-key <data-dir>/job-signing-key.pem") || strings.Contains(got, "s3") {
				t.Errorf("next steps:\n%s\nwant the database as %s", got, tt.want)
			}
		})
	}
}
