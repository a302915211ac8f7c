package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// signingKeyFile is the job-signing key's name in patchd's data
// directory, which the store does not hold.
const signingKeyFile = "job-signing-key.pem"

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Work on a controller's store itself",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStoreMigrateCmd())
	return cmd
}

func newStoreMigrateCmd() *cobra.Command {
	var from, to, passwordFile string
	cmd := &cobra.Command{
		Use:   "migrate --from sqlite:///var/lib/patchd/patchline.db --to postgres://…",
		Short: "Copy a single-box store (SQLite) into an empty PostgreSQL database",
		Long: `migrate copies patchd's embedded store into PostgreSQL, for several patchd
replicas on one database: every endpoint with its node key hash (agents keep
working without enrolling again), inventories, jobs with their signed
payloads, numbers and states, results, policy revisions, the audit log with
its ids, when the fleet first saw each update, API tokens and halted
rollouts.

The source is read and never written. Stop patchd first, or migrate a copy
made by 'patchctl backup': what a patchd still running on the source writes
after the copy is not carried over. The source must have this patchctl's
schema version (run the patchd of this version on it once if it is older).

The target database must be empty: migrate creates the schema, copies
everything in one transaction, counts every table against the source and
commits, or leaves the database as it was. Endpoints' job numbers are
marked unknown until each agent's next report, as after a restore.

The job-signing key is a file in patchd's data directory, not in the store:
give it to every patchd on PostgreSQL with --signing-key; migrate prints the
command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return migrateStore(cmd.Context(), cmd.OutOrStdout(), from, to, passwordFile)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the SQLite store to copy: sqlite:///`PATH` (patchline.db in patchd's data directory, or a backup)")
	cmd.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database: a postgres:// `URL` or key/value connection string")
	cmd.Flags().StringVar(&passwordFile, "to-password-file", "", "`file` holding the PostgreSQL password (else the connection string's, or PGPASSWORD, or ~/.pgpass)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// migrateStore copies the SQLite store at from into the PostgreSQL
// database to and prints what it copied and what to do next.
func migrateStore(ctx context.Context, out io.Writer, from, to, passwordFile string) error {
	path, err := sqlitePath(from)
	if err != nil {
		return err
	}
	var opts []postgres.Option
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("--to-password-file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return fmt.Errorf("--to-password-file %s is empty", passwordFile)
		}
		opts = append(opts, postgres.WithPassword(pw))
	}

	src, err := sqlite.OpenExport(ctx, path)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	var tables []postgres.ImportTable
	for _, name := range src.Tables() {
		n, err := src.Count(ctx, name)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		rows, err := src.Rows(ctx, name)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		defer rows.Close()
		tables = append(tables, postgres.ImportTable{Name: name, Columns: rows.Columns(), Rows: rows, Count: n})
	}

	// Open creates the schema in a new database (and refuses one newer
	// than this patchctl knows).
	dst, err := postgres.Open(ctx, to, opts...)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	if err := dst.Import(ctx, tables); err != nil {
		return fmt.Errorf("--to: %w", err)
	}

	fmt.Fprintf(out, "Copied %s (schema version %d) into PostgreSQL, in one transaction:\n", path, src.SchemaVersion())
	for _, t := range tables {
		fmt.Fprintf(out, "  %-12s %9d\n", t.Name, t.Count)
	}
	fmt.Fprintln(out, "Every table was counted in PostgreSQL against the source before the commit.")
	fmt.Fprintln(out)
	fmt.Fprint(out, nextSteps(path, to, passwordFile))
	return nil
}

// nextSteps says how to start patchd on the database: with the data
// directory's job-signing key, which agents pinned.
func nextSteps(path, to, passwordFile string) string {
	key := filepath.Join(filepath.Dir(path), signingKeyFile)
	where := "the data directory the store came from"
	if _, err := os.Stat(key); err == nil {
		where, key = "the store's data directory", shellQuote(key)
	} else {
		// A placeholder, for the operator to fill: not quoted.
		key = filepath.Join("<data-dir>", signingKeyFile)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Next: start patchd on PostgreSQL with the job-signing key of %s\n", where)
	fmt.Fprintf(&b, "(every agent pinned it; the store does not hold it), on every replica:\n\n")
	fmt.Fprintf(&b, "  patchd --database %s", shellQuote(redactPassword(to)))
	if passwordFile != "" {
		fmt.Fprintf(&b, " --database-password-file %s", shellQuote(passwordFile))
	}
	fmt.Fprintf(&b, " --signing-key %s --data-dir DIR [the other flags as before]\n\n", key)
	fmt.Fprintf(&b, "Agents keep their identity: give them the replicas' URLs (--controller https://a,https://b).\n")
	return b.String()
}

// sqlitePath is the file a sqlite: URL names: sqlite:///abs/path or
// sqlite:relative/path.
func sqlitePath(from string) (string, error) {
	u, err := url.Parse(from)
	if err != nil || u.Scheme != "sqlite" {
		return "", fmt.Errorf("--from %q: want the store as sqlite:///var/lib/patchd/patchline.db", from)
	}
	if u.Host != "" {
		return "", fmt.Errorf("--from %q: a path after sqlite:// starts with a third slash (sqlite:///var/lib/patchd/patchline.db), or use sqlite:relative/path", from)
	}
	p := u.Path
	if u.Opaque != "" {
		p = u.Opaque
	}
	if p == "" {
		return "", fmt.Errorf("--from %q: no path; want sqlite:///var/lib/patchd/patchline.db", from)
	}
	return p, nil
}

// passwordField is a password in a key/value connection string.
var passwordField = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactPassword hides a password that the connection string dsn holds.
func redactPassword(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return passwordField.ReplaceAllString(dsn, "${1}xxxxx")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
