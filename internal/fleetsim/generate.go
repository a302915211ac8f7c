// Package fleetsim generates synthetic fleets and simulates a fleet of
// endpoints against a running controller, for benchmarks, demos and the
// performance bar in BENCHMARKS.md.
//
// Generate writes a fleet repo (a Git repository of valid CUE), a state
// snapshot and the secrets file patchd and the simulator share. Run starts
// many real agents (package agent, with the simulated backend) in one
// process against a controller, waits until the controller reports every
// client compliant, optionally measures commit-to-job latency through the
// webhook, and sums it all up.
//
// The fleet shapes come from internal/plangen, the generator the
// planner's benchmarks use, so a generated repo, snapshot and simulation
// all name the same clients.
package fleetsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/protocol"
)

// HeldUpdate is the update every generated client holds back with an
// exclusion: the Windows Malicious Software Removal Tool, which every
// simulated Windows endpoint reports as missing. Releasing the hold in a
// commit makes jobs for it, which is how the simulator measures the time
// from a push to the first job reaching an agent.
const HeldUpdate = "KB890830"

// Paths of what Generate writes under its output directory.
const (
	RepoDirName = "fleet"
	StateFile   = "state.json"
	SecretsFile = "secrets.json"
)

// GenerateOptions size and shape a generated fleet.
type GenerateOptions struct {
	// Clients and Endpoints size the fleet; Updates is the number of
	// updates each endpoint of the snapshot reports.
	Clients   int
	Endpoints int
	Updates   int
	// Soak is every ring's soak time.
	Soak time.Duration
	// RealisticWindows gives weeknight and weekend windows instead of
	// windows that are always open.
	RealisticWindows bool
	// Now is when the snapshot is taken.
	Now time.Time
}

// Generated says where Generate put things.
type Generated struct {
	RepoDir     string
	Revision    string
	StatePath   string
	SecretsPath string
}

// Generate writes under out: the fleet repo (RepoDirName, a Git repository
// on branch main with one commit), a state snapshot (StateFile) and a
// secrets file (SecretsFile, mode 0600). out must not hold a fleet repo
// already.
func Generate(ctx context.Context, out string, opts GenerateOptions) (*Generated, error) {
	if opts.Clients < 1 || opts.Endpoints < 0 || opts.Updates < 0 {
		return nil, fmt.Errorf("generate: need at least one client and no negative sizes (clients %d, endpoints %d, updates %d)", opts.Clients, opts.Endpoints, opts.Updates)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now().UTC().Truncate(time.Second)
	}
	g := &Generated{
		RepoDir:     filepath.Join(out, RepoDirName),
		StatePath:   filepath.Join(out, StateFile),
		SecretsPath: filepath.Join(out, SecretsFile),
	}
	if _, err := os.Stat(g.RepoDir); err == nil {
		return nil, fmt.Errorf("generate: %s already exists; choose an empty --out", g.RepoDir)
	}
	files := plangen.FleetFiles(opts.Clients, plangen.FilesOptions{Soak: opts.Soak, RealisticWindows: opts.RealisticWindows, Hold: HeldUpdate})
	rev, err := initRepo(g.RepoDir, files, fmt.Sprintf("Generate a fleet of %d clients", opts.Clients))
	if err != nil {
		return nil, err
	}
	g.Revision = rev
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := writeSnapshot(g.StatePath, plangen.Snapshot(opts.Clients, opts.Endpoints, opts.Updates, opts.Now)); err != nil {
		return nil, err
	}
	sec := protocol.SecretsFile{AdminToken: randomSecret(), WebhookSecret: randomSecret(), Enrollment: map[string]string{}}
	for i := range opts.Clients {
		sec.Enrollment[plangen.ClientID(i)] = randomSecret()
	}
	data, err := json.MarshalIndent(sec, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode secrets: %w", err)
	}
	if err := os.WriteFile(g.SecretsPath, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write secrets: %w", err)
	}
	return g, nil
}

// randomSecret is a new secret of 32 random bytes, in hex.
func randomSecret() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on the platforms Go supports.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeSnapshot(path string, s *protocol.Snapshot) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := protocol.EncodeSnapshot(f, s); err != nil {
		f.Close()
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return nil
}

// committer signs the generator's and the simulator's commits.
func committer() *object.Signature {
	return &object.Signature{Name: "Patchline fleet simulator", Email: "fleetsim@patchline.invalid", When: time.Now()}
}

// initRepo makes dir a Git repository on branch main holding files, in one
// commit, and returns the commit hash.
func initRepo(dir string, files map[string][]byte, msg string) (string, error) {
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return "", fmt.Errorf("init fleet repo %s: %w", dir, err)
	}
	return commitFiles(repo, dir, files, msg)
}

// CommitFiles writes files (path to content) into the fleet repo at dir and
// commits them on the checked-out branch, returning the commit hash.
func CommitFiles(dir string, files map[string][]byte, msg string) (string, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return "", fmt.Errorf("open fleet repo %s: %w", dir, err)
	}
	return commitFiles(repo, dir, files, msg)
}

func commitFiles(repo *git.Repository, dir string, files map[string][]byte, msg string) (string, error) {
	wt, err := repo.Worktree()
	if err != nil {
		return "", fmt.Errorf("fleet repo %s: %w", dir, err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", fmt.Errorf("fleet repo %s: %w", dir, err)
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return "", fmt.Errorf("fleet repo %s: %w", dir, err)
		}
	}
	// One status walk for all the files: adding them one by one walks the
	// worktree once per file, which is quadratic in a large fleet.
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", fmt.Errorf("fleet repo %s: git add: %w", dir, err)
	}
	hash, err := wt.Commit(msg, &git.CommitOptions{Author: committer()})
	if errors.Is(err, git.ErrEmptyCommit) {
		head, herr := repo.Head()
		if herr != nil {
			return "", fmt.Errorf("fleet repo %s: %w", dir, herr)
		}
		return head.Hash().String(), nil
	}
	if err != nil {
		return "", fmt.Errorf("fleet repo %s: commit: %w", dir, err)
	}
	return hash.String(), nil
}
