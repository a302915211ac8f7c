package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// fetchExpect runs one Fetch and checks its head and changed flag.
func fetchExpect(t *testing.T, s *Source, wantHead plumbing.Hash, wantChanged bool) {
	t.Helper()
	head, changed, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if head != wantHead || changed != wantChanged {
		t.Fatalf("Fetch = %s, changed %v; want %s, changed %v", head, changed, wantHead, wantChanged)
	}
}

func TestFetchFollowsPushes(t *testing.T) {
	tests := []struct {
		name string
		url  func(t *testing.T, base string) string
	}{
		{"git daemon over git://", func(t *testing.T, base string) string { return startGitDaemon(t, base) + "fleet.git" }},
		{"file:// URL", func(t *testing.T, base string) string { return "file://" + filepath.Join(base, "fleet.git") }},
		{"plain local path", func(t *testing.T, base string) string { return filepath.Join(base, "fleet.git") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			up := newUpstream(t, base)
			first := up.first
			url := tt.url(t, base)

			s, err := New(Config{URL: url, Dir: filepath.Join(t.TempDir(), "clone")})
			if err != nil {
				t.Fatal(err)
			}
			fetchExpect(t, s, first, true)
			fetchExpect(t, s, first, false)

			second := up.commit("clients.cue", "add client acme")
			fetchExpect(t, s, second, true)
			fetchExpect(t, s, second, false)

			// A force-push back is fetched (and left to Verify to refuse).
			up.forcePush(first)
			fetchExpect(t, s, first, true)
		})
	}
}

func TestFetchReusesExistingClone(t *testing.T) {
	base := t.TempDir()
	up := newUpstream(t, base)
	url := filepath.Join(base, "fleet.git")
	dir := filepath.Join(t.TempDir(), "clone")

	s1, err := New(Config{URL: url, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	head, _, err := s1.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// A restarted controller opens the same clone and reports the head once.
	s2, err := New(Config{URL: url, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fetchExpect(t, s2, head, true)
	fetchExpect(t, s2, head, false)

	// The fleet repo moved: the remote is repointed, not duplicated.
	moved := filepath.Join(t.TempDir(), "moved.git")
	if err := os.Rename(up.bare, moved); err != nil {
		t.Fatal(err)
	}
	s3, err := New(Config{URL: "file://" + moved, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fetchExpect(t, s3, head, true)
}

func TestFetchErrors(t *testing.T) {
	base := t.TempDir()
	newUpstream(t, base)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"branch missing upstream", Config{URL: filepath.Join(base, "fleet.git"), Branch: "production"}, "branch production"},
		{"repository missing", Config{URL: filepath.Join(base, "nope.git")}, "nope.git"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = filepath.Join(t.TempDir(), "clone")
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = s.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Fetch error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	key := writeSSHKey(t, dir)
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no URL", Config{Dir: dir}, "no URL"},
		{"no clone directory", Config{URL: "https://git.example.com/msp/fleet.git"}, "no clone directory"},
		{"branch with a space", Config{URL: "https://git.example.com/fleet.git", Dir: dir, Branch: "my branch"}, "invalid branch"},
		{"branch with ..", Config{URL: "https://git.example.com/fleet.git", Dir: dir, Branch: "a..b"}, "invalid branch"},
		{"token over plain http", Config{URL: "http://git.example.com/fleet.git", Dir: dir, Token: "t0k"}, "plain http"},
		{"token on an ssh URL", Config{URL: "git@git.example.com:msp/fleet.git", Dir: dir, Token: "t0k"}, "only with https"},
		{"ssh URL without key", Config{URL: "ssh://git@git.example.com/msp/fleet.git", Dir: dir}, "needs an SSH key file"},
		{"scp-like URL without key", Config{URL: "git@git.example.com:msp/fleet.git", Dir: dir}, "needs an SSH key file"},
		{"key file on https", Config{URL: "https://git.example.com/fleet.git", Dir: dir, SSHKeyFile: key}, "only with ssh"},
		{"token on git://", Config{URL: "git://git.example.com/fleet.git", Dir: dir, Token: "t0k"}, "take no credentials"},
		{"key file missing", Config{URL: "git@git.example.com:fleet.git", Dir: dir, SSHKeyFile: filepath.Join(dir, "none")}, "SSH key file"},
		{"known_hosts missing", Config{URL: "git@git.example.com:fleet.git", Dir: dir, SSHKeyFile: key, KnownHostsFile: filepath.Join(dir, "none")}, "known_hosts"},
		{"unsupported scheme", Config{URL: "ftp://git.example.com/fleet.git", Dir: dir}, "unsupported URL scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewAcceptsEachURLForm(t *testing.T) {
	dir := t.TempDir()
	key := writeSSHKey(t, dir)
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"https with token", Config{URL: "https://git.example.com/msp/fleet.git", Token: "t0k"}},
		{"https anonymous", Config{URL: "https://git.example.com/msp/fleet.git"}},
		{"ssh URL with port", Config{URL: "ssh://git@git.example.com:2222/msp/fleet.git", SSHKeyFile: key, KnownHostsFile: known}},
		{"scp-like", Config{URL: "git@git.example.com:msp/fleet.git", SSHKeyFile: key, KnownHostsFile: known}},
		{"git://", Config{URL: "git://git.example.com/msp/fleet.git"}},
		{"file://", Config{URL: "file:///srv/fleet.git"}},
		{"plain path", Config{URL: "/srv/fleet.git"}},
		{"branch with slash", Config{URL: "/srv/fleet.git", Branch: "release/2025-q3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dir = dir
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if tt.cfg.Branch == "" && s.Branch() != DefaultBranch {
				t.Errorf("Branch() = %q, want %q", s.Branch(), DefaultBranch)
			}
		})
	}
}

func TestSourceVerifyRefusesForcePush(t *testing.T) {
	base := t.TempDir()
	up := newUpstream(t, base)
	s, err := New(Config{URL: filepath.Join(base, "fleet.git"), Dir: filepath.Join(t.TempDir(), "clone")})
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second := up.commit("acme.cue", "add acme")
	if _, _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(first, second, VerifyPolicy{}); err != nil {
		t.Fatalf("fast-forward refused: %v", err)
	}
	up.forcePush(first)
	head, _, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var refused *RefusedError
	if err := s.Verify(second, head, VerifyPolicy{}); !errors.As(err, &refused) {
		t.Fatalf("Verify after force-push = %v, want *RefusedError", err)
	}
	if !strings.Contains(refused.Reason, "history rewrite refused") {
		t.Errorf("reason = %q", refused.Reason)
	}
}

func TestVerifyDir(t *testing.T) {
	up := newUpstream(t, t.TempDir())
	second := up.commit("acme.cue", "add acme")
	for _, dir := range []string{up.bare, up.work} {
		if err := VerifyDir(dir, up.first, second, VerifyPolicy{}); err != nil {
			t.Errorf("VerifyDir(%s): fast-forward refused: %v", dir, err)
		}
		var refused *RefusedError
		if err := VerifyDir(dir, second, up.first, VerifyPolicy{}); !errors.As(err, &refused) {
			t.Errorf("VerifyDir(%s) back to an older commit = %v, want *RefusedError", dir, err)
		}
	}
	var refused *RefusedError
	if err := VerifyDir(t.TempDir(), plumbing.ZeroHash, second, VerifyPolicy{}); err == nil || errors.As(err, &refused) {
		t.Errorf("VerifyDir(not a repository) = %v, want an error that is not a refusal", err)
	}
}
