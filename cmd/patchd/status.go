package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/patchline/patchline/reconciler/commitstatus"
)

// statusFlags adds the flags of the commit statuses patchd posts to fs,
// and returns the function that, once fs is parsed, reads the token file
// and checks them into *cfg.
func statusFlags(fs *pflag.FlagSet, cfg *commitstatus.Config) func() error {
	var provider, tokenFile string
	fs.StringVar(&provider, "status-provider", "", "post a commit status for each revision applied or refused, and for halted rollouts, to `FORGE`: github, gitlab or gitea (default off)")
	fs.StringVar(&cfg.API, "status-api", "", "the forge's API base `URL` (default https://api.github.com for github, https://gitlab.com/api/v4 for gitlab; required for gitea, e.g. https://gitea.msp.example/api/v1)")
	fs.StringVar(&cfg.Repo, "status-repo", "", "the fleet repo on the forge, `OWNER/NAME` (gitlab: the project's path with its groups, or its numeric id)")
	fs.StringVar(&tokenFile, "status-token-file", "", "`file` holding a token that may post commit statuses to --status-repo")
	return func() error {
		cfg.Provider = commitstatus.Provider(provider)
		if tokenFile != "" {
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				return fmt.Errorf("--status-token-file: %w", err)
			}
			if cfg.Token = string(bytes.TrimSpace(b)); cfg.Token == "" {
				return fmt.Errorf("--status-token-file %s is empty; put the forge token in it", tokenFile)
			}
		}
		return cfg.Check()
	}
}
