package source

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// sshKeygen is OpenSSH's ssh-keygen, which git runs to make SSH
// signatures; the tests sign with it so that verification is checked
// against the real format, not against a copy of this package's reading.
func sshKeygen(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh-keygen is missing (Debian: openssh-client); CI needs it")
		}
		t.Skip("SKIPPING: ssh-keygen is missing (Debian: openssh-client); SSH signatures are not tested")
	}
	return bin
}

// sshKey makes an SSH key pair of kind ("ed25519", "rsa", "ecdsa") and
// returns the private key file and the public key line.
func sshKey(t *testing.T, kind string) (string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "id_"+kind)
	args := []string{"-q", "-t", kind, "-N", "", "-C", kind + "@test", "-f", file}
	if kind == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command(sshKeygen(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return file, strings.TrimSpace(string(pub))
}

// keygenSigner signs commits with `ssh-keygen -Y sign`, as git does with
// gpg.format=ssh.
type keygenSigner struct {
	t         *testing.T
	key       string
	namespace string
}

func (s keygenSigner) Sign(r io.Reader) ([]byte, error) {
	msg, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(s.t.TempDir(), "commit")
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(sshKeygen(s.t), "-Y", "sign", "-n", s.namespace, "-f", s.key, file).CombinedOutput(); err != nil {
		return nil, errors.New(string(out))
	}
	return os.ReadFile(file + ".sig")
}

func TestVerifySSHSigned(t *testing.T) {
	edKey, edPub := sshKey(t, "ed25519")
	rsaKey, rsaPub := sshKey(t, "rsa")
	ecKey, ecPub := sshKey(t, "ecdsa")
	_, otherPub := sshKey(t, "ed25519")
	h := newHistory(t) // commits by tech@example.com
	base := h.commit("initial", nil, nil)
	ed := h.commit("signed with ed25519", nil, keygenSigner{t, edKey, "git"}, base)
	rsa := h.commit("signed with rsa", nil, keygenSigner{t, rsaKey, "git"}, base)
	ec := h.commit("signed with ecdsa", nil, keygenSigner{t, ecKey, "git"}, base)
	file := h.commit("signed for files, not git", nil, keygenSigner{t, edKey, "file"}, base)
	tampered := h.tamper(ed, "signed with ed25519, then edited", base)
	tech, pgpKey := newKey(t, "Tech", "tech@example.com")
	pgp := h.commit("signed with OpenPGP", tech, nil, base)

	allowed := func(lines ...string) VerifyPolicy {
		return VerifyPolicy{RequireSigned: true, AllowedSigners: strings.Join(lines, "\n") + "\n"}
	}
	team := allowed(
		"# the MSP's technicians",
		"tech@example.com "+edPub,
		`*@example.com namespaces="git" `+rsaPub,
		"tech@example.com,ops@example.com "+ecPub,
	)
	tests := []struct {
		name       string
		head       plumbing.Hash
		policy     VerifyPolicy
		wantReason string // empty: accepted
	}{
		{"ed25519 key listed for the committer", ed, team, ""},
		{"rsa key listed for the committer's domain", rsa, team, ""},
		{"ecdsa key listed among several principals", ec, team, ""},
		{"key listed for someone else", ed, allowed("boss@example.com " + edPub), "do not list for tech@example.com"},
		{"key listed for other namespaces only", rsa, allowed(`* namespaces="file" ` + rsaPub), "do not list"},
		{"key not listed", ed, allowed("tech@example.com " + otherPub), "which the allowed signers do not list"},
		{"signature made for another namespace", file, team, `made for "file", not for git`},
		{"content changed after signing", tampered, team, "bad signature"},
		{"OpenPGP-signed commit without a keyring", pgp, team, "no OpenPGP keyring is configured"},
		{"OpenPGP and SSH keys together", pgp, VerifyPolicy{RequireSigned: true, Keyring: pgpKey, AllowedSigners: team.AllowedSigners}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(h.repo, base, tt.head, tt.policy)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want accepted", err)
				}
				return
			}
			var refused *RefusedError
			if !errors.As(err, &refused) || !strings.Contains(refused.Reason, tt.wantReason) {
				t.Fatalf("Verify = %v, want refused with %q", err, tt.wantReason)
			}
		})
	}
}

func TestParseAllowedSigners(t *testing.T) {
	_, pub := sshKey(t, "ed25519")
	tests := []struct {
		name, text string
		want       int
		wantErr    string
	}{
		{"comments and blank lines", "# team\n\ntech@example.com " + pub + "\n", 1, ""},
		{"tab after the principals", "tech@example.com\t" + pub + "\n", 1, ""},
		{"namespaces option", `a@x.com,b@x.com namespaces="git,file" ` + pub, 1, ""},
		{"missing key", "tech@example.com\n", 0, "line 1"},
		{"key that does not parse", "tech@example.com ssh-ed25519 notbase64!\n", 0, "line 1"},
		{"certificate authority", "# ca\n*@x.com cert-authority " + pub, 0, `line 2: option "cert-authority" is not supported`},
		{"validity option", `tech@example.com valid-after="20260101" ` + pub, 0, `option "valid-after" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAllowedSigners(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("%d signers, error %v; want %d", len(got), err, tt.want)
			}
		})
	}
}

// FuzzVerifySSH: no allowed-signers text or signature makes the parsers
// panic, and nothing but a real signature verifies.
func FuzzVerifySSH(f *testing.F) {
	f.Add("tech@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
		"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n")
	f.Add(`* namespaces="git" ecdsa-sha2-nistp256 AAAA`, "-----BEGIN SSH SIGNATURE-----\n\n-----END SSH SIGNATURE-----")
	f.Fuzz(func(t *testing.T, signers, sig string) {
		list, _ := parseAllowedSigners(signers)
		if _, err := verifySSH(sig, []byte("tree 0000\n\nmessage\n"), "tech@example.com", list); err == nil {
			t.Errorf("a made-up signature verified: %q", sig)
		}
	})
}

// TestVerifyCommitsSignedByGit: commits that git itself signs with an SSH
// key (gpg.format=ssh, as a technician sets it up) verify.
func TestVerifyCommitsSignedByGit(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is missing; CI needs it")
		}
		t.Skip("SKIPPING: git is missing")
	}
	key, pub := sshKey(t, "ed25519")
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("config", "user.name", "Tech")
	git("config", "user.email", "tech@example.com")
	git("config", "gpg.format", "ssh")
	git("config", "gpg.ssh.program", sshKeygen(t))
	git("config", "user.signingkey", key)
	if err := os.WriteFile(filepath.Join(dir, "fleet.cue"), []byte("package fleet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "--allow-empty", "-m", "initial import, before signing")
	anchor := git("rev-parse", "HEAD")
	git("add", "fleet.cue")
	git("commit", "-q", "-S", "-m", "add the fleet")
	first := git("rev-parse", "HEAD")
	git("-c", "user.email=intern@example.com", "commit", "-q", "-S", "--allow-empty", "-m", "signed by the same key as someone else")
	second := git("rev-parse", "HEAD")

	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	policy := VerifyPolicy{RequireSigned: true, AllowedSigners: "tech@example.com " + pub + "\n", TrustFrom: plumbing.NewHash(anchor)}
	if err := Verify(repo, plumbing.ZeroHash, plumbing.NewHash(first), policy); err != nil {
		t.Fatalf("commit signed by git: %v", err)
	}
	var refused *RefusedError
	if err := Verify(repo, plumbing.NewHash(first), plumbing.NewHash(second), policy); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "do not list for intern@example.com") {
		t.Fatalf("commit by another committer: %v, want refused", err)
	}
}
