package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/cliconf"
	"github.com/patchline/patchline/reconciler"
)

// newRestoreCmd is `patchd restore FILE`: the backup FILE replaces the
// store in the data directory, which is kept. The data directory comes
// from --data-dir, PATCHLINE_DATA_DIR or the config file, as for serve;
// serveKeys are the config file's other keys, which restore skips.
func newRestoreCmd(stderr io.Writer, lookupEnv func(string) (string, bool), serveKeys []string) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the store in --data-dir with a backup (from 'patchctl backup'), keeping the old one; patchd must be stopped",
		Long: `patchd restore puts the backup FILE, a copy made by 'patchctl backup', in
place of the SQLite store in --data-dir and keeps the store it replaces
beside it. Stop patchd first and start it as usual afterwards. A
PostgreSQL database is restored with pg_restore instead (README,
"Running on PostgreSQL").`,
		Example: "  patchd restore /srv/backup/patchline-2026-11-20.db --data-dir /var/lib/patchline",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return errors.New("restore: give --data-dir DIR, the data directory of the stopped patchd (or data-dir in its config file)")
			}
			kept, err := reconciler.Restore(cmd.Context(), dataDir, args[0])
			if err != nil {
				return cliconf.ExitError{Code: 1, Err: fmt.Errorf("restore: %w", err)}
			}
			fmt.Fprintf(stderr, "patchd: the store in %s is now the backup %s", dataDir, args[0])
			if kept != "" {
				fmt.Fprintf(stderr, "; the store it replaced is kept as %s", kept)
			}
			fmt.Fprintln(stderr, ". Start patchd as usual.")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the stopped patchd's data `DIR`, holding the SQLite store")
	cliconf.Bind(cmd, DefaultConfigFile, lookupEnv, serveKeys)
	return cmd
}
