package source

import (
	"fmt"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// LineChange is the commit that last changed one line of a file.
type LineChange struct {
	Commit  string    `json:"commit"`
	Author  string    `json:"author"`
	Date    time.Time `json:"date"`
	Subject string    `json:"subject"`
}

// LastChange finds the commit that last changed line (1-based) of path at
// revision rev of the repository in repoDir: the commit a technician asks
// about when a decision cites path:line.
func LastChange(repoDir, rev, path string, line int) (*LineChange, error) {
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return nil, fmt.Errorf("open git repository %s: %w", repoDir, err)
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve revision %q in %s: %w", rev, repoDir, err)
	}
	commit, err := repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("revision %q: %w", rev, err)
	}
	blame, err := git.Blame(commit, path)
	if err != nil {
		return nil, fmt.Errorf("blame %s at %s: %w", path, short(*hash), err)
	}
	if line < 1 || line > len(blame.Lines) {
		return nil, fmt.Errorf("blame %s at %s: no line %d (the file has %d)", path, short(*hash), line, len(blame.Lines))
	}
	l := blame.Lines[line-1]
	lc := &LineChange{Commit: l.Hash.String(), Author: fmt.Sprintf("%s <%s>", l.AuthorName, l.Author), Date: l.Date}
	if c, err := repo.CommitObject(l.Hash); err == nil {
		lc.Subject = subject(c.Message)
	}
	return lc, nil
}
