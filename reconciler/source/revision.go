package source

import (
	"context"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/schema"
)

// ReadRevision reads the files of revision rev (a branch, tag, commit
// hash, HEAD or an expression such as HEAD~1) of the Git repository at
// repoDir, which may be a working tree or a bare repository. Files are
// read from the commit's tree, never from the working tree, and only the
// regular files whose slash-separated path want accepts. files is keyed by
// that path; hash is the full commit hash.
func ReadRevision(ctx context.Context, repoDir, rev string, want func(path string) bool) (files map[string][]byte, hash string, err error) {
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return nil, "", fmt.Errorf("open git repository %s: %w", repoDir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, "", fmt.Errorf("resolve revision %q in %s: %w", rev, repoDir, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return nil, "", fmt.Errorf("revision %q (%s): %w", rev, h, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("revision %q (%s): read tree: %w", rev, h, err)
	}
	files = make(map[string][]byte)
	err = tree.Files().ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Symlinks are skipped as a walk of a working tree skips them:
		// their blob is the link target, not the file's content.
		if !f.Mode.IsFile() || f.Mode == filemode.Symlink || !want(f.Name) {
			return nil
		}
		s, err := f.Contents()
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
		files[f.Name] = []byte(s)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("revision %q (%s): %w", rev, h, err)
	}
	return files, h.String(), nil
}

// Loader turns the files of a revision into a fleet. The loader of
// package schema/loader is one; declaring the two methods used here keeps
// CUE out of this package.
type Loader interface {
	// Wants says whether the file at a slash-separated repository path
	// is part of the fleet.
	Wants(path string) bool
	// LoadFiles loads a fleet from its files, keyed by slash-separated
	// path, and records revision in Fleet.Revision.
	LoadFiles(ctx context.Context, files map[string][]byte, revision string) (*schema.Fleet, error)
}

// LoadRevision loads the fleet at revision rev of the Git repository at
// repoDir with l, reading the files l wants with [ReadRevision].
// Fleet.Revision is the full commit hash. Errors from l are returned as
// they are, so a caller can test them with errors.Is.
func LoadRevision(ctx context.Context, l Loader, repoDir, rev string) (*schema.Fleet, error) {
	files, hash, err := ReadRevision(ctx, repoDir, rev, l.Wants)
	if err != nil {
		return nil, err
	}
	return l.LoadFiles(ctx, files, hash)
}

// Commit is one commit of a fleet repository as a reader of its history
// sees it.
type Commit struct {
	Hash string
	// Author and Email name the commit's author.
	Author string
	Email  string
	// Date is the committer date: when the change landed on the branch.
	Date    time.Time
	Message string
}

// FirstParents returns the first-parent history of HEAD in the Git
// repository at repoDir (a working tree or a bare repository), newest
// first, down to the root commit: the commits as they landed on the
// branch, without those a merge brought in. When since is not zero it
// stops at the first commit made before since, which it includes so that
// the oldest commit made after since can be compared with it.
func FirstParents(ctx context.Context, repoDir string, since time.Time) ([]Commit, error) {
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", repoDir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("%s: HEAD: %w", repoDir, err)
	}
	c, err := repo.CommitObject(head.Hash())
	if err != nil {
		return nil, fmt.Errorf("%s: HEAD: %w", repoDir, err)
	}
	var chain []Commit
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		chain = append(chain, Commit{
			Hash: c.Hash.String(), Author: c.Author.Name, Email: c.Author.Email,
			Date: c.Committer.When, Message: c.Message,
		})
		if !since.IsZero() && c.Committer.When.Before(since) || len(c.ParentHashes) == 0 {
			return chain, nil
		}
		parent, err := repo.CommitObject(c.ParentHashes[0])
		if err != nil {
			return nil, fmt.Errorf("%s: parent of %s: %w", repoDir, c.Hash, err)
		}
		c = parent
	}
}
