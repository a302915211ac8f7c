package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

func newBackupCmd() *cobra.Command {
	var (
		cf  controllerFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "backup --controller URL --out FILE",
		Short: "Save a consistent copy of the controller's store while it runs",
		Long: `backup downloads a copy of patchd's store (endpoints, their inventories, jobs,
results, revisions and the audit log), made while patchd runs, and checks it
before it replaces FILE. Restore it with 'patchd restore FILE --data-dir
DIR' while patchd is stopped.

The copy does not hold the job-signing key (job-signing-key.pem in patchd's
data directory); back that file up once, it never changes. The copy holds node
key hashes and signed jobs: keep it where only the MSP's administrators can
read it.

A patchd that keeps its store in PostgreSQL (--database) makes no copy: back
the database up with PostgreSQL's own tools (pg_dump, or base backups with WAL
archiving). This command then says so, naming the tables, and saves nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			body, err := c.Backup(cmd.Context())
			if err != nil {
				// The controller's answer says why; with PostgreSQL, what
				// to back up instead.
				return fmt.Errorf("no backup made, %s is unchanged: %w", out, err)
			}
			defer body.Close()
			// The copy holds node key hashes and signed jobs: only its
			// owner reads it.
			f, err := atomicfile.Create(out, 0o600)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			defer f.Discard()
			n, err := io.Copy(f, body)
			if err != nil {
				return fmt.Errorf("download backup: %w", err)
			}
			if err := sqlite.Verify(cmd.Context(), f.Name()); err != nil {
				return fmt.Errorf("the downloaded copy is not usable, %s is unchanged: %w", out, err)
			}
			if err := f.Commit(); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup of %s saved to %s (%d bytes, verified)\n", cf.url, out, n)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to save the backup to (replaced only by a verified copy)")
	return cmd
}
