package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/signingkey"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make the controller's job-signing key",
		Long: `keys makes the key patchd signs jobs with. Agents pin its public half when
they enrol and refuse jobs signed by any other key.

patchd on the embedded store makes its own key in its data directory on the
first start. patchd on PostgreSQL (--database) is given one with
--signing-key FILE, the same file for every patchd on the database.`,
	}
	cmd.AddCommand(newKeysGenerateCmd())
	return cmd
}

func newKeysGenerateCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate --out FILE",
		Short: "Write a new job-signing key to FILE, readable by its owner only",
		Long: `generate writes a new ed25519 job-signing key to FILE (mode 0600) and prints
its public key's fingerprint. It never replaces a file: a key agents have
pinned must not be lost. Give the file to patchd with --signing-key, and
keep a copy with your backups: without it, every agent must enrol again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			key, err := signingkey.Generate()
			if err != nil {
				return err
			}
			if err := signingkey.WriteNew(out, key); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job-signing key written to %s (mode 0600), public key %s\n", out, signingkey.Fingerprint(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to write the key to (must not exist)")
	return cmd
}
