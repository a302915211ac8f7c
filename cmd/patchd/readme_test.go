package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/internal/signingkey"
	"github.com/patchline/patchline/protocol"
)

// readmeSection returns the shell commands of the README's section under
// heading (a "### " line), one per line with continuations joined, in
// order.
func readmeSection(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", heading)
	}
	section := readme[start+1:]
	if end := regexp.MustCompile(`\n##+ `).FindStringIndex(section[len(heading):]); end != nil {
		section = section[:len(heading)+end[0]]
	}
	var cmds []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		for _, line := range strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n") {
			if line = strings.Join(strings.Fields(line), " "); line != "" {
				cmds = append(cmds, line)
			}
		}
	}
	return cmds
}

// TestREADMERunningOnPostgreSQL runs the commands of the README's
// "Running on PostgreSQL" section against a PostgreSQL server of its own,
// as written but for where things are: patchd with its database, password
// file and key (patchctl's test runs the key's command) enrolls an agent;
// pg_dump dumps the database, createdb and pg_restore load the dump into a
// new one, and patchd started on that one with the same key has the agent.
func TestREADMERunningOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	cmds := readmeSection(t, "### Running on PostgreSQL")
	var patchd, dump []string
	var restore []string
	for _, c := range cmds {
		switch f := strings.Fields(c)[0]; f {
		case "patchctl":
			// TestREADMEKeysGenerate in cmd/patchctl runs it.
		case "patchd":
			if w := strings.Fields(c); len(w) > 1 && w[1] == "serve" {
				patchd = w[2:]
			} else {
				t.Fatalf("README: %q: want patchd serve", c)
			}
		case "pg_dump":
			dump = append(dump, c)
		case "createdb", "pg_restore":
			restore = append(restore, c)
		default:
			t.Fatalf("README: %q: this test runs patchd, pg_dump, createdb and pg_restore", c)
		}
	}
	if patchd == nil || len(dump) != 1 || len(restore) != 2 {
		t.Fatalf("README's commands: patchd %q, dump %q, restore %q; want one patchd, one pg_dump, createdb and pg_restore", patchd, dump, restore)
	}
	for _, tool := range []string{"pg_dump", "createdb", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			gittest.SkipOrFail(t, "%s: %v (Debian's postgresql-client package)", tool, err)
		}
	}

	// A server of its own: its pg_hba.conf changes.
	c, err := pgtest.Start(ctx, pgtest.Options{TCP: true})
	if errors.Is(err, pgtest.ErrNoServer) {
		gittest.SkipOrFail(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	const password = "correct horse battery staple"
	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{`CREATE ROLE patchd LOGIN PASSWORD '` + password + `'`, `CREATE DATABASE patchline OWNER patchd`} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Over TCP patchd's role must give its password, as on a real server.
	hba := filepath.Join(c.Dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("host all patchd 127.0.0.1/32 scram-sha-256\n"), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}

	// Where the README's files and server are, here.
	etc, data, backups := t.TempDir(), t.TempDir(), t.TempDir()
	where := strings.NewReplacer(
		"db.msp.example:5432", "127.0.0.1:"+strconv.Itoa(c.Port), "sslmode=verify-full", "sslmode=disable",
		"/etc/patchline/", etc+"/", "/var/lib/patchline", data, "/srv/backup/", backups+"/",
	)
	key, err := signingkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := signingkey.WriteNew(filepath.Join(etc, "job-signing-key.pem"), key); err != nil {
		t.Fatal(err)
	}
	secrets, err := os.ReadFile(patchdtest.SecretsFile(t, map[string]string{"acme": "acme-enrollment-secret-0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"db-password": []byte(password + "\n"), "git-token": []byte("ghp_readme\n"), "secrets.json": secrets} {
		if err := os.WriteFile(filepath.Join(etc, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.CopyDir("../../examples/demo/fleet")
	up.Commit("Demo fleet")

	// start runs patchd as the README does, on database db.
	start := func(db string) *patchdtest.Patchd {
		t.Helper()
		args := make([]string, len(patchd))
		for i, a := range patchd {
			args[i] = strings.Trim(where.Replace(strings.ReplaceAll(a, "/patchline?", "/"+db+"?")), "'")
		}
		cfg, _, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatalf("patchd %s: %v", strings.Join(args, " "), err)
		}
		if cfg.DatabasePassword != password || !key.Equal(cfg.SigningKey) || cfg.Repo.URL != "https://git.example/msp/fleet.git" {
			t.Fatalf("patchd's flags read password %q, the key %v, repo %q", cfg.DatabasePassword, key.Equal(cfg.SigningKey), cfg.Repo.URL)
		}
		// The fleet repo is a local one here, which takes no token; the
		// API and the metrics listen on free loopback ports.
		cfg.Repo.URL, cfg.Repo.Token = "file://"+up.Bare, ""
		cfg.Listen, cfg.MetricsListen, cfg.Logger = "127.0.0.1:0", "127.0.0.1:0", slog.New(slog.DiscardHandler)
		return patchdtest.Start(t, cfg)
	}
	pd := start("patchline")
	var er protocol.EnrollResponse
	if code, body := apitest.Do(t, pd.URL, "POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
		Client: "acme", Secret: "acme-enrollment-secret-0123456789", InstanceID: "instance-readme",
		NodeKey: "node-key-of-the-readme-agent-0123456789abcdef", Hostname: "ACME-WS-001", OS: protocol.OS{Family: "linux"},
	}, &er); code != 200 || !ed25519.PublicKey(er.SigningKey).Equal(key.Public()) {
		t.Fatalf("enroll: %d %s; want the key given with --signing-key", code, body)
	}
	pd.Stop()

	env := append(os.Environ(), "PGPASSWORD="+password, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User)
	sh := func(line string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	sh(where.Replace(dump[0]))
	dumps, err := filepath.Glob(filepath.Join(backups, "patchline-*.dump"))
	if err != nil || len(dumps) != 1 || filepath.Base(dumps[0]) != "patchline-"+time.Now().Format("2006-01-02")+".dump" {
		t.Fatalf("pg_dump wrote %v (%v), want patchline-<today>.dump", dumps, err)
	}
	sh(where.Replace(restore[0]))
	sh(strings.ReplaceAll(where.Replace(restore[1]), filepath.Join(backups, "patchline-2026-11-20.dump"), dumps[0]))

	restored := start("patchline_restored")
	var snap protocol.Snapshot
	if code, body := apitest.Do(t, restored.URL, "GET", "/v1/state", map[string]string{"Authorization": "Bearer " + patchdtest.AdminToken}, nil, &snap); code != 200 {
		t.Fatalf("state: %d %s", code, body)
	}
	if len(snap.Endpoints) != 1 || snap.Endpoints[0].ID != er.Endpoint {
		t.Errorf("the restored database holds %+v, want the endpoint %s enrolled before the dump", snap.Endpoints, er.Endpoint)
	}
	if _, err := os.Stat(filepath.Join(data, "patchline.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory holds an SQLite store (%v)", err)
	}
}
