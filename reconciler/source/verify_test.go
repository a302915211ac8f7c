package source

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/patchline/patchline/internal/gittest"
)

// newKey makes an Ed25519 OpenPGP key for "name <email>" and its armored
// public key.
func newKey(t testing.TB, name, email string) (*openpgp.Entity, string) {
	t.Helper()
	return gittest.SigningKey(t, name, email)
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

// commit makes an empty commit on parents, committed by
// tech@example.com; key or signer may be nil.
func (h *history) commit(msg string, key *openpgp.Entity, signer git.Signer, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	return h.commitBy("tech@example.com", msg, key, signer, parents...)
}

// commitBy is commit by the committer (and author) email.
func (h *history) commitBy(email, msg string, key *openpgp.Entity, signer git.Signer, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	h.when = h.when.Add(time.Minute)
	sig := &object.Signature{Name: "Tech", Email: email, When: h.when}
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
	tech, techKey := newKey(t, "Tech", "tech@example.com")
	mallory, _ := newKey(t, "Mallory", "mallory@example.com")
	bob, bobKey := newKey(t, "Bob", "bob@example.com")
	h := newHistory(t)

	// u0 predates signing; c1..c3 are the signed main line, applied up to c3.
	u0 := h.commit("initial import before signing", nil, nil)
	c1 := h.commit("add client acme", tech, nil, u0)
	c2 := h.commit("acme: canary ring", tech, nil, c1)
	c3 := h.commit("acme: approve security updates", tech, nil, c2)
	n1 := h.commit("sneaky unsigned change", nil, nil, c3)
	n2 := h.commit("signed on top", tech, nil, n1)
	w1 := h.commit("signed by an outsider", mallory, nil, c3)
	b1 := h.commitBy("bob@example.com", "signed by bob", bob, nil, c3)
	f1 := h.commit("feature: exclusions", tech, nil, u0)
	m1 := h.commit("merge feature", tech, nil, c3, f1)
	f2 := h.commit("feature: unsigned", nil, nil, u0)
	m2 := h.commit("merge unsigned feature", tech, nil, c3, f2)
	s1 := h.commit("ssh-signed change", nil, sshSigner{}, c3)
	t1 := h.tamper(c2, "acme: approve everything", c3)
	o1 := h.commit("unrelated history", tech, nil)

	signed := VerifyPolicy{RequireSigned: true, Keyring: techKey}
	// trusting is signed with a trust anchor, for a first head.
	trusting := func(anchor plumbing.Hash) VerifyPolicy {
		p := signed
		p.TrustFrom = anchor
		return p
	}
	tests := []struct {
		name        string
		last, head  plumbing.Hash
		policy      VerifyPolicy
		wantCommit  plumbing.Hash // zero: accepted
		wantReason  string
		wantAnyFail string // a non-refusal error containing this
	}{
		{name: "first start, signed commits after the trust anchor", head: c3, policy: trusting(u0)},
		{name: "first start at the trust anchor itself, unsigned", head: u0, policy: trusting(u0)},
		{name: "first start with an unsigned head", head: n1, policy: trusting(c3), wantCommit: n1, wantReason: "is not signed"},
		{name: "first start, unsigned commit between the trust anchor and a signed head", head: n2, policy: trusting(c1), wantCommit: n1, wantReason: "is not signed"},
		{name: "first start, merged side branch with an unsigned commit", head: m2, policy: trusting(c3), wantCommit: f2, wantReason: "is not signed"},
		{name: "first start, head older than the trust anchor", head: c1, policy: trusting(c3), wantCommit: c1,
			wantReason: "does not descend from the trust anchor (--trust-from) " + short(c3)},
		{name: "first start, head unrelated to the trust anchor", head: o1, policy: trusting(c3), wantCommit: o1, wantReason: "does not descend from the trust anchor"},
		{name: "first start, signing required without a trust anchor", head: c3, policy: signed, wantAnyFail: "no revision is applied yet, so nothing vouches for the head's history: give a trust anchor (--trust-from COMMIT)"},
		{name: "trust anchor missing from the clone", head: c3, policy: trusting(plumbing.NewHash("0123456789abcdef0123456789abcdef01234567")), wantAnyFail: "the trust anchor (--trust-from) 0123456"},
		{name: "first start without signing required", head: n1},
		{name: "trust anchor not used once a revision is applied", last: c3, head: n2, policy: trusting(n1), wantCommit: n1, wantReason: "is not signed"},
		{name: "head unchanged", last: c3, head: c3, policy: signed},
		{name: "fast-forward of signed commits", last: c1, head: c3, policy: signed},
		{name: "old unsigned history is not rechecked", last: c1, head: c3, policy: signed},
		{name: "unsigned commit under a signed head", last: c3, head: n2, policy: signed, wantCommit: n1, wantReason: "is not signed"},
		{name: "unsigned commit allowed when signing is off", last: c3, head: n2},
		{name: "signed by a key outside the keyring", last: c3, head: w1, policy: signed, wantCommit: w1, wantReason: "not in the keyring"},
		{name: "keyring with two keys accepts the second", last: c3, head: b1, policy: VerifyPolicy{RequireSigned: true, Keyring: techKey + bobKey}},
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
	key, armored := newKey(b, "Tech", "tech@example.com")
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

// TestVerifyOpenPGPSignerIsTheCommitter: an OpenPGP-signed commit counts
// only when the signing key's identities include the committer's email,
// as an SSH signature counts only for the emails the allowed signers list
// its key for; a key in the keyring cannot vouch for someone else's commit.
func TestVerifyOpenPGPSignerIsTheCommitter(t *testing.T) {
	lead, _ := newKey(t, "Fleet Lead", "lead@msp.example")
	if err := lead.AddUserId("Fleet Lead", "", "lead@old-msp.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := lead.AddUserId("Fleet Lead", "", "lead@sold-off.example", nil); err != nil {
		t.Fatal(err)
	}
	revokeIdentity(t, lead, "Fleet Lead <lead@sold-off.example>")
	_, techKey := newKey(t, "Tech", "tech@msp.example")
	policy := VerifyPolicy{RequireSigned: true, Keyring: publicKey(t, lead) + techKey}
	fingerprint := fmt.Sprintf("%X", lead.PrimaryKey.Fingerprint)

	h := newHistory(t)
	base := h.commit("initial", nil, nil)
	tests := []struct {
		name       string
		committer  string
		wantReason string // empty: accepted
	}{
		{"committed as the key's identity", "lead@msp.example", ""},
		{"committed as the key's second identity", "lead@old-msp.example", ""},
		{"committer email in other case", "Lead@MSP.example", ""},
		{"committed as another technician whose key is in the keyring", "tech@msp.example",
			"is signed by OpenPGP key " + fingerprint + " (Fleet Lead <lead@msp.example>, Fleet Lead <lead@old-msp.example>, Fleet Lead <lead@sold-off.example> (revoked)), " +
				"whose identities do not include the committer's email tech@msp.example"},
		{"committed as an identity the key revoked", "lead@sold-off.example", "whose identities do not include the committer's email lead@sold-off.example"},
		{"committed as an address no key has", "intern@msp.example", "whose identities do not include the committer's email intern@msp.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := h.commitBy(tt.committer, "change by "+tt.committer, lead, nil, base)
			err := Verify(h.repo, base, head, policy)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want accepted", err)
				}
				return
			}
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Commit != head || !strings.Contains(refused.Reason, tt.wantReason) {
				t.Fatalf("Verify = %v, want %s refused with %q", err, head, tt.wantReason)
			}
		})
	}
}

// revokeIdentity has key revoke its identity name, as `gpg --edit-key`
// revuid does.
func revokeIdentity(t testing.TB, key *openpgp.Entity, name string) {
	t.Helper()
	id, ok := key.Identities[name]
	if !ok {
		t.Fatalf("key has no identity %q", name)
	}
	sig := &packet.Signature{
		Version: key.PrimaryKey.Version, SigType: packet.SigTypeCertificationRevocation,
		PubKeyAlgo: key.PrimaryKey.PubKeyAlgo, Hash: crypto.SHA256, CreationTime: time.Now(),
		IssuerKeyId: &key.PrimaryKey.KeyId, IssuerFingerprint: key.PrimaryKey.Fingerprint,
	}
	if err := sig.SignUserId(name, key.PrimaryKey, key.PrivateKey, nil); err != nil {
		t.Fatal(err)
	}
	id.Revocations = append(id.Revocations, sig)
	id.Signatures = append(id.Signatures, sig)
}

// publicKey is key's armored public key, as `gpg --armor --export` writes.
func publicKey(t testing.TB, key *openpgp.Entity) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
