package source

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/patchline/patchline/internal/gittest"
)

// newKey makes an Ed25519 OpenPGP key and its armored public key.
func newKey(t testing.TB, name string) (*openpgp.Entity, string) {
	t.Helper()
	return gittest.SigningKey(t, name)
}

// sshSigner stamps an SSH signature block, as `git commit -S` does with
// gpg.format=ssh; its content does not matter since it is refused unread.
type sshSigner struct{}

func (sshSigner) Sign(io.Reader) ([]byte, error) {
	return []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"), nil
}

// history builds commits in an in-memory repository.
type history struct {
	t    testing.TB
	repo *git.Repository
	wt   *git.Worktree
	when time.Time
}

func newHistory(t testing.TB) *history {
	t.Helper()
	repo, err := git.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &history{t: t, repo: repo, wt: wt, when: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
}

// commit makes an empty commit on parents; key or signer may be nil.
func (h *history) commit(msg string, key *openpgp.Entity, signer git.Signer, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	h.when = h.when.Add(time.Minute)
	sig := &object.Signature{Name: "Tech", Email: "tech@example.com", When: h.when}
	if len(parents) == 0 {
		// An unborn branch, so the commit has no parent.
		if err := h.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(msg))); err != nil {
			h.t.Fatal(err)
		}
	}
	hash, err := h.wt.Commit(msg, &git.CommitOptions{
		AllowEmptyCommits: true,
		Author:            sig,
		Parents:           parents,
		SignKey:           key,
		Signer:            signer,
	})
	if err != nil {
		h.t.Fatalf("commit %q: %v", msg, err)
	}
	return hash
}

// tamper stores a copy of signed with a changed message and new parents:
// the signature no longer matches the content.
func (h *history) tamper(signed plumbing.Hash, msg string, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	c, err := h.repo.CommitObject(signed)
	if err != nil {
		h.t.Fatal(err)
	}
	c.Message = msg
	c.ParentHashes = parents
	obj := h.repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		h.t.Fatal(err)
	}
	hash, err := h.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		h.t.Fatal(err)
	}
	return hash
}

func TestVerify(t *testing.T) {
	alice, aliceKey := newKey(t, "Alice")
	mallory, _ := newKey(t, "Mallory")
	bob, bobKey := newKey(t, "Bob")
	h := newHistory(t)

	// u0 predates signing; c1..c3 are the signed main line, applied up to c3.
	u0 := h.commit("initial import before signing", nil, nil)
	c1 := h.commit("add client acme", alice, nil, u0)
	c2 := h.commit("acme: canary ring", alice, nil, c1)
	c3 := h.commit("acme: approve security updates", alice, nil, c2)
	n1 := h.commit("sneaky unsigned change", nil, nil, c3)
	n2 := h.commit("signed on top", alice, nil, n1)
	w1 := h.commit("signed by an outsider", mallory, nil, c3)
	b1 := h.commit("signed by bob", bob, nil, c3)
	f1 := h.commit("feature: exclusions", alice, nil, u0)
	m1 := h.commit("merge feature", alice, nil, c3, f1)
	f2 := h.commit("feature: unsigned", nil, nil, u0)
	m2 := h.commit("merge unsigned feature", alice, nil, c3, f2)
	s1 := h.commit("ssh-signed change", nil, sshSigner{}, c3)
	t1 := h.tamper(c2, "acme: approve everything", c3)
	o1 := h.commit("unrelated history", alice, nil)

	signed := VerifyPolicy{RequireSigned: true, Keyring: aliceKey}
	tests := []struct {
		name        string
		last, head  plumbing.Hash
		policy      VerifyPolicy
		wantCommit  plumbing.Hash // zero: accepted
		wantReason  string
		wantAnyFail string // a non-refusal error containing this
	}{
		{name: "first start with a signed head", head: c3, policy: signed},
		{name: "first start with an unsigned head", head: n1, policy: signed, wantCommit: n1, wantReason: "is not signed"},
		{name: "first start without signing required", head: n1},
		{name: "head unchanged", last: c3, head: c3, policy: signed},
		{name: "fast-forward of signed commits", last: c1, head: c3, policy: signed},
		{name: "old unsigned history is not rechecked", last: c1, head: c3, policy: signed},
		{name: "unsigned commit under a signed head", last: c3, head: n2, policy: signed, wantCommit: n1, wantReason: "is not signed"},
		{name: "unsigned commit allowed when signing is off", last: c3, head: n2},
		{name: "signed by a key outside the keyring", last: c3, head: w1, policy: signed, wantCommit: w1, wantReason: "not in the keyring"},
		{name: "keyring with two keys accepts the second", last: c3, head: b1, policy: VerifyPolicy{RequireSigned: true, Keyring: aliceKey + bobKey}},
		{name: "content changed after signing", last: c3, head: t1, policy: signed, wantCommit: t1, wantReason: "bad signature"},
		{name: "SSH-signed commit without allowed signers", last: c3, head: s1, policy: signed, wantCommit: s1, wantReason: "no allowed signers are configured"},
		{name: "merged side branch, all signed", last: c3, head: m1, policy: signed},
		{name: "merged side branch with an unsigned commit", last: c3, head: m2, policy: signed, wantCommit: f2, wantReason: "is not signed"},
		{name: "force-push to an older commit", last: c3, head: c1, policy: signed, wantCommit: c1, wantReason: "history rewrite refused"},
		{name: "force-push to an older commit, signing off", last: c3, head: c1, wantCommit: c1, wantReason: "does not descend from the last applied revision"},
		{name: "force-push to unrelated history", last: c3, head: o1, wantCommit: o1, wantReason: "history rewrite refused"},
		{name: "signing required but no keys", last: c3, head: n2, policy: VerifyPolicy{RequireSigned: true}, wantAnyFail: "neither an OpenPGP keyring nor an allowed-signers list"},
		{name: "keyring is not OpenPGP", last: c3, head: n2, policy: VerifyPolicy{RequireSigned: true, Keyring: "ssh-ed25519 AAAA"}, wantAnyFail: "read keyring"},
		{name: "head missing from the clone", last: c3, head: plumbing.NewHash("0123456789abcdef0123456789abcdef01234567"), wantAnyFail: "verify head"},
		{name: "no head", last: c3, wantAnyFail: "no head"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(h.repo, tt.last, tt.head, tt.policy)
			var refused *RefusedError
			switch {
			case tt.wantAnyFail != "":
				if err == nil || errors.As(err, &refused) || !strings.Contains(err.Error(), tt.wantAnyFail) {
					t.Fatalf("Verify = %v, want a non-refusal error containing %q", err, tt.wantAnyFail)
				}
			case tt.wantCommit.IsZero():
				if err != nil {
					t.Fatalf("Verify = %v, want accepted", err)
				}
			default:
				if !errors.As(err, &refused) {
					t.Fatalf("Verify = %v, want *RefusedError", err)
				}
				if refused.Revision != tt.head || refused.Commit != tt.wantCommit {
					t.Errorf("refused revision %s commit %s, want %s commit %s", refused.Revision, refused.Commit, tt.head, tt.wantCommit)
				}
				if !strings.Contains(refused.Reason, tt.wantReason) {
					t.Errorf("reason %q does not contain %q", refused.Reason, tt.wantReason)
				}
				if !strings.Contains(err.Error(), short(tt.head)) {
					t.Errorf("error %q does not name the head", err)
				}
			}
		})
	}
}

// BenchmarkVerify measures a signed check of 100 new commits on top of an
// applied history of 2,000 commits, the whole of which Verify walks once.
func BenchmarkVerify(b *testing.B) {
	key, armored := newKey(b, "Alice")
	h := newHistory(b)
	prev := h.commit("root", nil, nil)
	for i := range 2000 {
		prev = h.commit(fmt.Sprintf("applied %d", i), nil, nil, prev)
	}
	last := prev
	for i := range 100 {
		prev = h.commit(fmt.Sprintf("new %d", i), key, nil, prev)
	}
	policy := VerifyPolicy{RequireSigned: true, Keyring: armored}
	b.ResetTimer()
	for b.Loop() {
		if err := Verify(h.repo, last, prev, policy); err != nil {
			b.Fatal(err)
		}
	}
}
