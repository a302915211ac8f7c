package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/releasekey"
	"github.com/patchline/patchline/internal/signingkey"
)

func newReleaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Make the agent release key and sign agent releases",
		Long: `release signs the agent binaries patchd offers for self-update
(patchd serve --agent-releases DIR). Agents pin the release key's public half
(patch-agent --release-key FILE.pub) and install only a release it signed,
of a version above their own, whose binary has the signed hash. Keep the
private key off the controller: it is not the job-signing key.`,
	}
	cmd.AddCommand(newReleaseKeygenCmd(), newReleaseSignCmd())
	return cmd
}

func newReleaseKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Write a new release key to FILE (mode 0600) and its public half to FILE.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			pub, err := releasekey.Generate(out)
			if err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release key written to %s (mode 0600), public key %s%s (%s): install it with every agent\n",
				out, out, releasekey.PublicSuffix, signingkey.Fingerprint(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "`FILE` to write the key to (must not exist)")
	return cmd
}

func newReleaseSignCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "sign --key FILE DIR/VERSION",
		Short: "Write release.json and its signature for the agent binaries in DIR/VERSION",
		Long: `sign lists the agent binaries in a release directory (named for its version,
e.g. releases/1.4.2, holding patch-agent_linux_amd64, patch-agent_windows_amd64.exe,
...) with their SHA-256 and size in release.json, and signs it with the release
key into release.json.sig. Run it again after changing a binary.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return errors.New("--key FILE is required (make one with patchctl release keygen --out FILE)")
			}
			k, err := releasekey.LoadPrivate(key)
			if err != nil {
				return err
			}
			r, err := releasekey.Sign(k, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release %s signed: %d binaries\n", r.Version, len(r.Files))
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "release key `FILE` (from patchctl release keygen)")
	return cmd
}
