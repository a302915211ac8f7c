// Package history builds the policy history of a fleet repository as an
// auditor reads it: commit by commit along the branch's first parents, with
// who merged what and when, the pull or merge request it came from, and for
// each client the semantic changes of its policy ("+ exclusion KB5034441 on
// hostnames ACME-SQL01 until 2026-12-31", "ring pilot: soak 72h → 48h")
// rather than a text diff. A commit the controller would refuse for a client
// shows as such, with the first problem.
//
// Each commit is loaded with loader.Loader, whose cache makes consecutive
// commits cheap: only clients whose files changed are evaluated again.
package history

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// Options filter a history. The zero value keeps everything.
type Options struct {
	// Client keeps only that client's changes (and refusals of the whole
	// fleet, which stop every client).
	Client string
	// Update keeps only changes that name that update id: exclusions,
	// requirements, resumes and rollbacks naming it, and entries whose
	// match glob matches it. Refusals name no update and are left out.
	Update string
	// Since leaves out commits made before it.
	Since time.Time
}

// History is the policy history of a branch, newest commit first.
type History struct {
	Commits []Commit `json:"commits"`
}

// Commit is one commit that changed some client's policy.
type Commit struct {
	Hash   string `json:"hash"`
	Author string `json:"author"`
	Email  string `json:"email"`
	// Date is the commit date: when the change landed on the branch.
	Date    time.Time `json:"date"`
	Subject string    `json:"subject"`
	// PR is the pull or merge request the commit merged, when its message
	// says so: "#42", or "group/project!42" for GitLab.
	PR      string          `json:"pr,omitempty"`
	Clients []ClientChanges `json:"clients"`
}

// ClientChanges are the changes of one client in one commit. Client ""
// stands for the whole fleet, when the controller refuses the commit for
// every client.
type ClientChanges struct {
	Client  string   `json:"client"`
	Changes []Change `json:"changes"`
}

// Build walks the first-parent history of HEAD in the Git repository at
// repoDir (a working tree or a bare repository), loads each commit with l
// and returns the commits that change some client's policy, filtered by
// opts. The root commit's clients show as added. A commit before the
// repository became a fleet repository (no cue.mod/module.cue) is skipped.
func Build(ctx context.Context, l *loader.Loader, repoDir string, opts Options) (*History, error) {
	chain, err := source.FirstParents(ctx, repoDir, opts.Since)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	w := walker{loader: l, repoDir: repoDir, last: make(map[string]*schema.Client), refusal: make(map[string]string)}
	h := &History{Commits: []Commit{}}
	for i := len(chain) - 1; i >= 0; i-- {
		c := chain[i]
		changes, err := w.step(ctx, c.Hash)
		if err != nil {
			return nil, err
		}
		if !opts.Since.IsZero() && c.Date.Before(opts.Since) {
			continue
		}
		changes = filter(changes, opts)
		if len(changes) == 0 {
			continue
		}
		subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
		h.Commits = append(h.Commits, Commit{
			Hash: c.Hash, Author: c.Author, Email: c.Email,
			Date: c.Date, Subject: subject, PR: PullRequest(c.Message), Clients: changes,
		})
	}
	slices.Reverse(h.Commits)
	return h, nil
}

// walker holds the policy as the controller would run it after each
// commit: every client's last good version.
type walker struct {
	loader  *loader.Loader
	repoDir string
	// last is each client's policy after the commits walked so far; a
	// refused commit leaves it as it was, as the controller does.
	last map[string]*schema.Client
	// fleet is set once a commit loaded as a fleet repository.
	fleet bool
	// refusal is the first problem of each client ("" for the whole fleet)
	// that the last commit refused, so a client that stays broken over
	// several commits shows once, until its problem changes.
	refusal map[string]string
}

// refuse returns the refusal of client for problem, or nothing when the
// previous commit was refused for the same problem.
func (w *walker) refuse(client, problem string) []ClientChanges {
	if w.refusal[client] == problem {
		return nil
	}
	w.refusal[client] = problem
	return []ClientChanges{{Client: client, Changes: []Change{{Op: Refused, Kind: "refused", Text: "refused by the controller: " + problem}}}}
}

// step loads one commit and returns its changes against the state the
// previous commits left.
func (w *walker) step(ctx context.Context, hash string) ([]ClientChanges, error) {
	fleet, err := source.LoadRevision(ctx, w.loader, w.repoDir, hash)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("history: %w", ctx.Err())
		}
		if errors.Is(err, loader.ErrNotFleetRepo) && !w.fleet {
			return nil, nil
		}
		return w.refuse("", err.Error()), nil
	}
	w.fleet = true
	problems := make(map[string]string)
	for _, p := range fleet.Problems {
		if p.Level != schema.LevelError {
			continue
		}
		if _, seen := problems[p.Client]; !seen {
			problems[p.Client] = p.String()
		}
	}
	if first, ok := problems[""]; ok {
		return w.refuse("", first), nil
	}
	delete(w.refusal, "")

	ids := slices.Collect(maps.Keys(w.last))
	ids = append(ids, slices.Collect(maps.Keys(fleet.Clients))...)
	ids = append(ids, slices.Collect(maps.Keys(problems))...)
	slices.Sort(ids)
	var out []ClientChanges
	for _, id := range slices.Compact(ids) {
		if first, ok := problems[id]; ok {
			out = append(out, w.refuse(id, first)...)
			continue
		}
		delete(w.refusal, id)
		old, nu := w.last[id], fleet.Clients[id]
		if old != nil && nu != nil && old.Digest == nu.Digest {
			continue
		}
		if ch := Diff(old, nu); len(ch) > 0 {
			out = append(out, ClientChanges{Client: id, Changes: ch})
		}
		if nu == nil {
			delete(w.last, id)
		} else {
			w.last[id] = nu
		}
	}
	return out, nil
}

// filter applies the client and update filters to one commit's changes.
func filter(in []ClientChanges, opts Options) []ClientChanges {
	var out []ClientChanges
	for _, cc := range in {
		if opts.Client != "" && cc.Client != "" && cc.Client != opts.Client {
			continue
		}
		if opts.Update != "" {
			var kept []Change
			for _, ch := range cc.Changes {
				if ch.Names(opts.Update) {
					kept = append(kept, ch)
				}
			}
			if len(kept) == 0 {
				continue
			}
			cc.Changes = kept
		}
		out = append(out, cc)
	}
	return out
}

var (
	githubMerge  = regexp.MustCompile(`(?m)^Merge pull request #(\d+)`)
	gitlabMerge  = regexp.MustCompile(`(?m)^See merge request ([\w.\-/]+![0-9]+)`)
	squashSuffix = regexp.MustCompile(`\(#(\d+)\)\s*$`)
)

// PullRequest returns the pull or merge request a commit message names:
// "#42" for GitHub's "Merge pull request #42 from …" and squash subjects
// ending in "(#42)", "group/project!42" for GitLab's "See merge request
// group/project!42", or "" when it names none.
func PullRequest(message string) string {
	if m := githubMerge.FindStringSubmatch(message); m != nil {
		return "#" + m[1]
	}
	if m := gitlabMerge.FindStringSubmatch(message); m != nil {
		return m[1]
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(message), "\n")
	if m := squashSuffix.FindStringSubmatch(subject); m != nil {
		return "#" + m[1]
	}
	return ""
}
