package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
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
ready to push.

The repository is built beside DIR (inside it, when DIR exists) and moved
in place once its commit is made: an init that fails leaves DIR as it
was, and can simply be run again.`,
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
	st, err := stage(dir)
	if err != nil {
		return err
	}
	defer st.discard()
	hash, files, err := buildRepo(st.build, dir, src, from, sig)
	if err != nil {
		return err
	}
	if err := st.commit(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Initialised fleet repository %s (commit %s, %d files).\nNext: edit clients/example/, run `patchctl vet %s`, then push it and protect the main branch.\n", dir, protocol.ShortRevision(hash), files, dir)
	return nil
}

// buildRepo lays the fleet repository down in build, as a Git
// repository with one commit, and returns the commit's hash and how many
// files it holds. Errors name dir, where the repository is meant to be.
func buildRepo(build, dir string, src fs.FS, from string, sig *object.Signature) (string, int, error) {
	files, err := fleettemplate.Copy(build, src)
	if err != nil {
		return "", 0, fmt.Errorf("write the fleet repo into %s: %w", dir, err)
	}
	// The schema as a CUE package, for cue vet, cue eval and editors.
	up, err := loader.WriteSchema(build)
	if err != nil {
		return "", 0, fmt.Errorf("lay the schema into %s: %w", dir, err)
	}
	for _, f := range up.Written {
		if !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	// The branch is main: what patchd follows by default and what the CI
	// files compare pull requests against.
	repo, err := git.PlainInitWithOptions(build, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return "", 0, fmt.Errorf("init git repository in %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return "", 0, fmt.Errorf("open worktree of %s: %w", dir, err)
	}
	for _, f := range files {
		if _, err := wt.Add(f); err != nil {
			return "", 0, fmt.Errorf("git add %s: %w", f, err)
		}
	}
	msg := "Start the fleet repository from the Patchline template"
	if from != "" {
		msg = "Start the fleet repository from " + filepath.Base(filepath.Clean(from))
	}
	hash, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
	if errors.Is(err, git.ErrMissingAuthor) {
		return "", 0, fmt.Errorf("commit in %s: no author: set user.name and user.email in git config, or pass --author \"Name <email>\"", dir)
	}
	if err != nil {
		return "", 0, fmt.Errorf("commit in %s: %w", dir, err)
	}
	return hash.String(), len(files), nil
}

// staging is where init builds a fleet repository before it appears in
// its directory, so that an init that fails leaves nothing behind and
// can simply be run again. When the directory does not exist, the
// repository is built in a new directory beside it, renamed to it at the
// end; when it exists (and is empty), in a new directory inside it, whose
// entries then move up. What existed before init is never removed.
type staging struct {
	dir   string // the fleet repository's directory
	build string // where the repository is built
	// existed says dir existed before init (empty).
	existed bool
	// made are the parent directories of dir that init created, deepest
	// first.
	made []string
	done bool
}

// stage checks that dir is empty or absent and makes the directory to
// build in (and dir's missing parents).
func stage(dir string) (*staging, error) {
	st := &staging{dir: dir}
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return nil, fmt.Errorf("%s is not empty: choose a new directory for the fleet repo", dir)
	case err == nil:
		st.existed = true
		st.build, err = mkdirUnique(dir, ".patchctl-init-")
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		return st, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	for p := parent; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(p) == p {
			break
		}
		st.made = append(st.made, p)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		st.discard()
		return nil, fmt.Errorf("create %s: %w", parent, err)
	}
	st.build, err = mkdirUnique(parent, "."+filepath.Base(filepath.Clean(dir))+".patchctl-init-")
	if err != nil {
		st.discard()
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	return st, nil
}

// commit puts the repository built in place: the build directory becomes
// dir, or its entries move into dir. If that fails, nothing of it stays
// in dir.
func (st *staging) commit() error {
	if !st.existed {
		if err := os.Rename(st.build, st.dir); err != nil {
			return fmt.Errorf("create %s: %w", st.dir, err)
		}
		st.done = true
		return nil
	}
	entries, err := os.ReadDir(st.build)
	if err != nil {
		return fmt.Errorf("create the fleet repo in %s: %w", st.dir, err)
	}
	for i, e := range entries {
		if err := os.Rename(filepath.Join(st.build, e.Name()), filepath.Join(st.dir, e.Name())); err != nil {
			for _, moved := range entries[:i] {
				_ = os.RemoveAll(filepath.Join(st.dir, moved.Name()))
			}
			return fmt.Errorf("create the fleet repo in %s: %w", st.dir, err)
		}
	}
	st.done = true
	if err := os.Remove(st.build); err != nil {
		return fmt.Errorf("remove %s: %w", st.build, err)
	}
	return nil
}

// discard removes what init made, unless the repository was committed:
// the build directory and the parents it created (those that are empty).
func (st *staging) discard() {
	if st.done {
		return
	}
	if st.build != "" {
		_ = os.RemoveAll(st.build)
	}
	for _, p := range st.made {
		_ = os.Remove(p)
	}
}

// mkdirUnique makes a new directory in parent named prefix and random
// hex digits, with the permissions the umask allows for 0755, as the
// directory init is asked for would get.
func mkdirUnique(parent, prefix string) (string, error) {
	for range 10 {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		p := filepath.Join(parent, prefix+hex.EncodeToString(b))
		err := os.Mkdir(p, 0o755)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for a directory in %s", parent)
}
