package main

import (
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/spf13/cobra"

	fleettemplate "github.com/patchline/patchline/fleet-repo-template"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

func newInitCmd() *cobra.Command {
	var author, from string
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a new fleet repository from the template, with a first commit",
		Long: `init lays down a fleet repository in DIR (which must be empty or absent):
cue.mod/ with a copy of the Patchline schema (so that cue vet, cue eval and
editors check what patchctl vet checks; see patchctl schema update),
fleet.cue with the shared defaults, clients/example/, CODEOWNERS, and CI
files for GitHub Actions and GitLab CI that vet every change and post its
plan on the pull request. It makes DIR a Git repository with one commit,
ready to push.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd, args[0], author, from)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "copy this directory (a fleet layout such as examples/demo/fleet) instead of the template")
	cmd.Flags().StringVar(&author, "author", "", `commit author as "Name <email>" (default: user.name and user.email from git config)`)
	return cmd
}

func runInit(cmd *cobra.Command, dir, author, from string) error {
	var sig *object.Signature
	if author != "" {
		addr, err := mail.ParseAddress(author)
		if err != nil || addr.Name == "" {
			return fmt.Errorf("--author %q: want \"Name <email>\"", author)
		}
		sig = &object.Signature{Name: addr.Name, Email: addr.Address, When: time.Now()}
	}
	src := fleettemplate.FS()
	if from != "" {
		if _, err := os.Stat(filepath.Join(from, schema.ModuleFile)); err != nil {
			return fmt.Errorf("--from %s: not a fleet repo layout (no %s)", from, schema.ModuleFile)
		}
		src = os.DirFS(from)
	}
	files, err := fleettemplate.Copy(dir, src)
	if err != nil {
		return err
	}
	// The schema as a CUE package, for cue vet, cue eval and editors.
	up, err := loader.WriteSchema(dir)
	if err != nil {
		return fmt.Errorf("lay the schema into %s: %w", dir, err)
	}
	for _, f := range up.Written {
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	// The branch is main: what patchd follows by default and what the CI
	// files compare pull requests against.
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return fmt.Errorf("init git repository in %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return fmt.Errorf("open worktree of %s: %w", dir, err)
	}
	for _, f := range files {
		if _, err := wt.Add(f); err != nil {
			return fmt.Errorf("git add %s: %w", f, err)
		}
	}
	msg := "Start the fleet repository from the Patchline template"
	if from != "" {
		msg = "Start the fleet repository from " + filepath.Base(filepath.Clean(from))
	}
	hash, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
	if errors.Is(err, git.ErrMissingAuthor) {
		return fmt.Errorf("commit in %s: no author: set user.name and user.email in git config, or pass --author \"Name <email>\"", dir)
	}
	if err != nil {
		return fmt.Errorf("commit in %s: %w", dir, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Initialised fleet repository %s (commit %s, %d files).\nNext: edit clients/example/, run `patchctl vet %s`, then push it and protect the main branch.\n", dir, protocol.ShortRevision(hash.String()), len(files), dir)
	return nil
}
