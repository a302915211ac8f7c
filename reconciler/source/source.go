package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// DefaultBranch is the branch a [Source] tracks when [Config.Branch] is empty.
const DefaultBranch = "main"

// remoteName is the name of the one remote in the clone.
const remoteName = "origin"

// Config says which fleet repo to follow and how to reach it.
type Config struct {
	// URL of the fleet repo. Accepted forms: https://host/path,
	// http://host/path (no token), ssh://[user@]host[:port]/path,
	// scp-like user@host:path, git://host[:port]/path, file:///path and
	// a plain local path.
	URL string
	// Branch to track; DefaultBranch when empty.
	Branch string
	// Dir is where the bare clone lives, normally a directory under the
	// controller's data directory. It is created on the first fetch and
	// reused afterwards.
	Dir string

	// SSHKeyFile is the private key (a deploy key) used for ssh URLs. It is
	// required for ssh URLs and refused for other schemes.
	SSHKeyFile string
	// SSHKeyPassphrase decrypts SSHKeyFile when it is encrypted.
	SSHKeyPassphrase string
	// KnownHostsFile holds the host keys that an ssh server must present.
	// When empty, go-git's default lookup applies: the files listed in
	// the SSH_KNOWN_HOSTS environment variable, else ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts. A host missing from the file is refused;
	// there is no option to skip host key checking.
	KnownHostsFile string

	// Token is an access token sent as HTTP basic auth password on https
	// URLs (GitHub, Gitea and GitLab personal or deploy tokens). Refused on
	// other schemes so it never travels in clear text.
	Token string
	// Username goes with Token; "git" when empty, which GitHub, Gitea and
	// GitLab accept for tokens.
	Username string
}

// Source follows one branch of a fleet repo. Its methods are safe for
// concurrent use; fetches are serialised.
type Source struct {
	url    string
	branch string
	dir    string
	auth   transport.AuthMethod

	// mu guards repo and last, and serialises fetches so that two fetches
	// never write the same clone at once.
	mu   sync.Mutex
	repo *git.Repository
	last plumbing.Hash
}

// New checks cfg and builds the authentication it asks for. It does not
// touch the network or the disk; the first [Source.Fetch] clones.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("fleet repo: no URL given")
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("fleet repo %s: no clone directory given", cfg.URL)
	}
	branch := cfg.Branch
	if branch == "" {
		branch = DefaultBranch
	}
	if !validBranch(branch) {
		return nil, fmt.Errorf("fleet repo %s: invalid branch name %q", cfg.URL, branch)
	}
	ep, err := transport.NewEndpoint(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("fleet repo %s: %w", cfg.URL, err)
	}
	auth, err := authFor(cfg, ep)
	if err != nil {
		return nil, fmt.Errorf("fleet repo %s: %w", cfg.URL, err)
	}
	return &Source{url: cfg.URL, branch: branch, dir: cfg.Dir, auth: auth}, nil
}

// validBranch applies the parts of git's ref name rules that matter for a
// branch given on the command line: no empty or dot-led components, no
// "..", no control characters or the characters git reserves.
func validBranch(b string) bool {
	if strings.HasPrefix(b, "-") || strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") || strings.Contains(b, "@{") {
		return false
	}
	for _, part := range strings.Split(b, "/") {
		if part == "" || strings.HasPrefix(part, ".") {
			return false
		}
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}

// authFor returns the auth method for the endpoint's scheme, or nil when
// the scheme needs none (git://, file://).
func authFor(cfg Config, ep *transport.Endpoint) (transport.AuthMethod, error) {
	switch ep.Protocol {
	case "ssh":
		if cfg.Token != "" {
			return nil, errors.New("an access token works only with https URLs; use an SSH key file for ssh URLs")
		}
		if cfg.SSHKeyFile == "" {
			return nil, errors.New("ssh URL needs an SSH key file (a deploy key)")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, cfg.SSHKeyFile, cfg.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("SSH key file %s: %w", cfg.SSHKeyFile, err)
		}
		var files []string
		if cfg.KnownHostsFile != "" {
			// Stat first: go-git silently skips missing files and then
			// reports a confusing error about SSH_KNOWN_HOSTS.
			if _, err := os.Stat(cfg.KnownHostsFile); err != nil {
				return nil, fmt.Errorf("known_hosts file: %w", err)
			}
			files = []string{cfg.KnownHostsFile}
		}
		db, err := gitssh.NewKnownHostsDb(files...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		// Offer only the host key types known_hosts holds for this host,
		// so the server cannot pick a type we have no key to check against.
		port := ep.Port
		if port == 0 {
			port = 22
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
		return keys, nil
	case "https", "http":
		if cfg.SSHKeyFile != "" {
			return nil, fmt.Errorf("an SSH key file works only with ssh URLs, not %s", ep.Protocol)
		}
		if cfg.Token == "" {
			return nil, nil
		}
		if ep.Protocol != "https" {
			return nil, errors.New("refusing to send an access token over plain http; use https")
		}
		user := cfg.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: cfg.Token}, nil
	case "git", "file":
		if cfg.SSHKeyFile != "" || cfg.Token != "" {
			return nil, fmt.Errorf("%s URLs take no credentials; remove the SSH key file or token", ep.Protocol)
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q", ep.Protocol)
	}
}

// Branch is the branch the source tracks.
func (s *Source) Branch() string { return s.branch }

// Dir is the directory of the bare clone, for loaders that read trees from it.
func (s *Source) Dir() string { return s.dir }

// Verify runs [Verify] on the clone, never at the same time as a fetch.
func (s *Source) Verify(lastApplied, head plumbing.Hash, policy VerifyPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, err := s.open()
	if err != nil {
		return err
	}
	return Verify(repo, lastApplied, head, policy)
}

// open returns the clone, creating it and its remote on first use and
// repointing the remote when the configured URL changed. s.mu must be held.
func (s *Source) open() (*git.Repository, error) {
	if s.repo != nil {
		return s.repo, nil
	}
	repo, err := git.PlainOpen(s.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(s.dir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", s.dir, err)
	}
	remote, err := repo.Remote(remoteName)
	switch {
	case errors.Is(err, git.ErrRemoteNotFound):
	case err != nil:
		return nil, fmt.Errorf("clone %s: %w", s.dir, err)
	case len(remote.Config().URLs) == 1 && remote.Config().URLs[0] == s.url:
		s.repo = repo
		return repo, nil
	default:
		if err := repo.DeleteRemote(remoteName); err != nil {
			return nil, fmt.Errorf("clone %s: replace remote: %w", s.dir, err)
		}
	}
	_, err = repo.CreateRemote(&config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{s.url},
		Fetch: []config.RefSpec{s.refSpec()},
	})
	if err != nil {
		return nil, fmt.Errorf("clone %s: add remote: %w", s.dir, err)
	}
	s.repo = repo
	return repo, nil
}

// refSpec maps the tracked branch to its remote-tracking ref. It forces
// the update so that a rewritten branch is fetched and then refused by
// Verify, rather than failing the fetch with a non-fast-forward error.
func (s *Source) refSpec() config.RefSpec {
	return config.RefSpec(fmt.Sprintf("+%s:%s", plumbing.NewBranchReferenceName(s.branch), s.trackingRef()))
}

func (s *Source) trackingRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, s.branch)
}

// Fetch brings the clone up to date with the remote branch and returns its
// head. changed is true when the head differs from the one the previous
// successful Fetch of this Source returned; the first successful Fetch
// always reports changed, so a restarted controller looks at the head once.
// The first Fetch into an empty directory is the clone; later ones
// transfer only new objects.
func (s *Source) Fetch(ctx context.Context) (head plumbing.Hash, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, err := s.open()
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{s.refSpec()},
		Auth:       s.auth,
		Tags:       git.NoTags,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s branch %s: %w", s.url, s.branch, err)
	}
	ref, err := repo.Reference(s.trackingRef(), true)
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("fetch %s branch %s: %w", s.url, s.branch, err)
	}
	head = ref.Hash()
	changed = head != s.last
	s.last = head
	return head, changed, nil
}
