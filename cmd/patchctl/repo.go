package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"

	"github.com/patchline/patchline/schema"
)

// The commands that work on a fleet repository take a directory (--repo,
// or vet's and schema update's argument) that may be anywhere inside it,
// as git does: a technician runs them from clients/acme as readily as
// from the top. repoDir finds the top.

// repoDir returns the top directory of the fleet repository that holds
// dir. With git set the command reads Git revisions or history, and the
// top is the Git repository's (gitTop); otherwise it reads the working
// tree, and the top is the nearest directory, dir or a parent, with the
// fleet's CUE module file (fleetTop), so that a fleet directory inside
// another project's repository is found too.
func repoDir(dir string, git bool) (string, error) {
	if git {
		return gitTop(dir)
	}
	return fleetTop(dir), nil
}

// gitTop returns the top of the Git repository that holds dir: dir itself
// when it is the top of a working tree or a bare repository, else the
// nearest parent with .git (go-git's DetectDotGit, no git command).
func gitTop(dir string) (string, error) {
	_, err := git.PlainOpen(dir)
	if err == nil {
		return dir, nil
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return "", fmt.Errorf("open git repository %s: %w", dir, err)
	}
	if _, serr := os.Stat(dir); serr != nil {
		return "", fmt.Errorf("fleet repository %s: %w", dir, serr)
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", fmt.Errorf("%s is not inside a Git repository (nor is any parent directory): give the fleet repository's clone with --repo", dir)
	}
	if err != nil {
		return "", fmt.Errorf("open git repository holding %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("open git repository holding %s: %w", dir, err)
	}
	return wt.Filesystem.Root(), nil
}

// fleetTop returns the nearest directory, dir or a parent, that holds the
// fleet's CUE module file (schema.ModuleFile), or dir itself when none
// does (loading it then says what is missing).
func fleetTop(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	for d := abs; ; {
		if fi, err := os.Stat(filepath.Join(d, filepath.FromSlash(schema.ModuleFile))); err == nil && fi.Mode().IsRegular() {
			if d == abs {
				return dir
			}
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}
