package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/protocol"
)

// VerifyPolicy says what a new head must satisfy besides descending from
// the last applied revision.
type VerifyPolicy struct {
	// RequireSigned demands a valid signature, OpenPGP by a key in Keyring
	// or SSH by a key in AllowedSigners, on every commit between the last
	// applied revision (exclusive) and the head (inclusive); before any
	// revision is applied, between TrustFrom (exclusive) and the head.
	RequireSigned bool
	// TrustFrom is the trust anchor of RequireSigned: the commit accepted
	// as it is, without checking it or its ancestors, while no revision
	// has been applied. The first head must be it or descend from it.
	// Once a revision is applied, that revision is the base of every check
	// and TrustFrom is not used.
	TrustFrom plumbing.Hash
	// Keyring is one or more armored OpenPGP public key blocks (the output
	// of `gpg --armor --export`; several exports may be concatenated).
	Keyring string
	// AllowedSigners lists the SSH keys allowed to sign, in git's
	// allowed-signers format (gpg.ssh.allowedSignersFile): a commit's SSH
	// signature counts when its key is listed for the committer's email.
	AllowedSigners string
}

// RefusedError means a candidate revision must not be applied: it rewrites
// history, or a commit in it is not properly signed. The controller keeps
// the last applied revision and reports Reason. Any other error from
// [Verify] is an operational failure (a missing object, an unreadable
// keyring) rather than a verdict on the revision.
type RefusedError struct {
	// Revision is the refused candidate head.
	Revision plumbing.Hash
	// Commit is the commit that failed the check; for a history rewrite it
	// is the head itself.
	Commit plumbing.Hash
	// Reason explains the refusal in words a technician can act on.
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("revision %s refused: %s", short(e.Revision), e.Reason)
}

func short(h plumbing.Hash) string { return protocol.ShortRevision(h.String()) }

// Verify decides whether head may replace lastApplied (ZeroHash before
// any revision is applied). Head is checked against a base: lastApplied
// or, before any revision is applied and with policy.RequireSigned,
// policy.TrustFrom (having neither is an error, not a refusal). Without
// policy.RequireSigned, a first head is accepted as it is. Verify returns
// a [*RefusedError] when:
//
//   - head does not descend from its base (the branch was force-pushed to
//     an older commit or to unrelated history, or the trust anchor is not
//     in the head's history);
//   - policy.RequireSigned is set and a commit that the base does not
//     already contain is unsigned, badly signed, signed by a key outside
//     the keyring or the allowed signers, signed by a key that is not the
//     committer's (an OpenPGP key without the committer's email among its
//     identities, an SSH key the allowed signers do not list for it), or
//     signed in a format that cannot be checked (X.509). Commits brought
//     in by a merge count too, not just the first-parent chain.
//
// The walk reads the whole history behind the base once when signing is
// required; fleet repos are small enough for that to be cheap (about 20 ms
// for 2,000 applied commits and 100 new signed ones, see BenchmarkVerify).
func Verify(repo *git.Repository, lastApplied, head plumbing.Hash, policy VerifyPolicy) error {
	if head.IsZero() {
		return errors.New("verify: no head revision given")
	}
	var keys signingKeys
	if policy.RequireSigned {
		var err error
		if keys, err = loadSigningKeys(policy); err != nil {
			return err
		}
	}
	headCommit, err := repo.CommitObject(head)
	if err != nil {
		return fmt.Errorf("verify head %s: %w", short(head), err)
	}
	base, baseName := lastApplied, "the last applied revision"
	if base.IsZero() {
		if !policy.RequireSigned {
			return nil
		}
		if policy.TrustFrom.IsZero() {
			return errors.New("verify: signed commits are required and no revision is applied yet, " +
				"so nothing vouches for the head's history: give a trust anchor (--trust-from COMMIT)")
		}
		base, baseName = policy.TrustFrom, "the trust anchor (--trust-from)"
	}
	if base == head {
		return nil
	}

	// Commits the base contains need no (second) look; when signing is
	// required we collect all of them so that a merged side branch is
	// checked only down to where it joins them.
	applied := map[plumbing.Hash]bool{base: true}
	if policy.RequireSigned {
		if applied, err = ancestors(repo, base); err != nil {
			return fmt.Errorf("verify: %s %s: %w", baseName, short(base), err)
		}
	}

	// Walk back from head, stopping at commits the base contains. Every
	// commit visited is new; reaching the base itself proves descent.
	var fresh []*object.Commit
	seen := map[plumbing.Hash]bool{head: true}
	queue := []*object.Commit{headCommit}
	foundBase := false
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c.Hash == base {
			foundBase = true
			continue
		}
		if applied[c.Hash] {
			continue
		}
		fresh = append(fresh, c)
		for _, p := range c.ParentHashes {
			if seen[p] {
				continue
			}
			seen[p] = true
			pc, err := repo.CommitObject(p)
			if err != nil {
				return fmt.Errorf("verify: parent %s of %s: %w", short(p), short(c.Hash), err)
			}
			queue = append(queue, pc)
		}
	}
	if !foundBase {
		return &RefusedError{
			Revision: head,
			Commit:   head,
			Reason: fmt.Sprintf("head %s does not descend from %s %s: history rewrite refused",
				short(head), baseName, short(base)),
		}
	}
	if !policy.RequireSigned {
		return nil
	}
	for _, c := range fresh {
		if err := checkSigned(c, head, keys); err != nil {
			return err
		}
	}
	return nil
}

// VerifyDir opens the Git repository at repoDir (a working tree or a bare
// repository) and runs [Verify] on it. Failing to open it is not a
// [*RefusedError]: it says nothing about the revision.
func VerifyDir(repoDir string, lastApplied, head plumbing.Hash, policy VerifyPolicy) error {
	repo, err := git.PlainOpen(repoDir)
	if err != nil {
		return fmt.Errorf("open git repository %s: %w", repoDir, err)
	}
	return Verify(repo, lastApplied, head, policy)
}

// ancestors returns from and every commit reachable from it.
func ancestors(repo *git.Repository, from plumbing.Hash) (map[plumbing.Hash]bool, error) {
	set := map[plumbing.Hash]bool{from: true}
	stack := []plumbing.Hash{from}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, err := repo.CommitObject(h)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", short(h), err)
		}
		for _, p := range c.ParentHashes {
			if !set[p] {
				set[p] = true
				stack = append(stack, p)
			}
		}
	}
	return set, nil
}

// armorEnd closes an armored key block; gpg writes one per export.
const armorEnd = "-----END PGP PUBLIC KEY BLOCK-----"

// signingKeys are the keys a commit may be signed with.
type signingKeys struct {
	// keyring is the merged armored OpenPGP keyring; empty for none.
	keyring string
	ssh     []allowedSigner
}

// loadSigningKeys reads the policy's keys. Having none is a configuration
// error, not a verdict on a revision.
func loadSigningKeys(policy VerifyPolicy) (signingKeys, error) {
	var keys signingKeys
	if strings.TrimSpace(policy.Keyring) == "" && strings.TrimSpace(policy.AllowedSigners) == "" {
		return keys, errors.New("verify: signed commits are required but there is neither an OpenPGP keyring nor an allowed-signers list")
	}
	if strings.TrimSpace(policy.Keyring) != "" {
		var err error
		if keys.keyring, err = mergeKeyring(policy.Keyring); err != nil {
			return keys, err
		}
	}
	if strings.TrimSpace(policy.AllowedSigners) != "" {
		var err error
		if keys.ssh, err = parseAllowedSigners(policy.AllowedSigners); err != nil {
			return keys, fmt.Errorf("verify: %w", err)
		}
	}
	return keys, nil
}

// mergeKeyring turns one or more armored public key blocks into a single
// block. go-crypto reads only the first armored block of its input, so
// keys exported one by one and concatenated would otherwise be ignored
// after the first. An unusable keyring is a configuration error, not a
// verdict on a revision.
func mergeKeyring(armored string) (string, error) {
	if strings.TrimSpace(armored) == "" {
		return "", errors.New("verify: signed commits are required but the keyring is empty")
	}
	var keys openpgp.EntityList
	rest := armored
	for strings.TrimSpace(rest) != "" {
		block := rest
		if i := strings.Index(rest, armorEnd); i >= 0 {
			block, rest = rest[:i+len(armorEnd)], rest[i+len(armorEnd):]
		} else {
			rest = ""
		}
		list, err := openpgp.ReadArmoredKeyRing(strings.NewReader(block))
		if err != nil {
			return "", fmt.Errorf("verify: read keyring (key block %d): %w", len(keys)+1, err)
		}
		keys = append(keys, list...)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return "", fmt.Errorf("verify: keyring: %w", err)
	}
	for _, k := range keys {
		if err := k.Serialize(w); err != nil {
			return "", fmt.Errorf("verify: keyring: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("verify: keyring: %w", err)
	}
	return buf.String(), nil
}

// checkSigned refuses revision unless c carries a valid OpenPGP signature
// by a key in the keyring that has the committer's email among its
// identities, or a valid SSH signature by a key the allowed signers list
// for its committer.
func checkSigned(c *object.Commit, revision plumbing.Hash, keys signingKeys) error {
	refuse := func(format string, args ...any) error {
		what := fmt.Sprintf("commit %s (%q by %s)", short(c.Hash), subject(c.Message), c.Author.Email)
		return &RefusedError{Revision: revision, Commit: c.Hash, Reason: what + " " + fmt.Sprintf(format, args...)}
	}
	sig := c.PGPSignature
	switch {
	case strings.TrimSpace(sig) == "":
		return refuse("is not signed")
	case strings.Contains(sig, "-----BEGIN SSH SIGNATURE-----"):
		return checkSSHSigned(c, keys.ssh, refuse)
	case !strings.Contains(sig, "-----BEGIN PGP SIGNATURE-----"):
		return refuse("carries a signature that is neither OpenPGP nor SSH (X.509?): it cannot be checked")
	case keys.keyring == "":
		return refuse("is OpenPGP-signed, but no OpenPGP keyring is configured (--keyring)")
	}
	signer, err := c.Verify(keys.keyring)
	switch {
	case err == nil:
		// A key vouches for its own identities only: a technician's key
		// must not pass off a commit as someone else's.
		if !signsAs(signer, c.Committer.Email) {
			return refuse("is signed by OpenPGP key %X (%s), whose identities do not include the committer's email %s",
				signer.PrimaryKey.Fingerprint, identityNames(signer), c.Committer.Email)
		}
		return nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return refuse("is signed by a key that is not in the keyring")
	case errors.Is(err, pgperrors.ErrKeyExpired), errors.Is(err, pgperrors.ErrSignatureExpired):
		return refuse("has an expired signature or signing key: %v", err)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return refuse("is signed by a revoked key")
	default:
		return refuse("has a bad signature: %v", err)
	}
}

// signsAs reports whether one of key's identities has email (in any case,
// as git compares emails). An identity the key has revoked does not count.
func signsAs(key *openpgp.Entity, email string) bool {
	for _, id := range key.Identities {
		if len(id.Revocations) == 0 && strings.EqualFold(id.UserId.Email, email) {
			return true
		}
	}
	return false
}

// identityNames lists key's identities ("Name <email>"), sorted, the
// revoked ones marked, to name the key in a refusal.
func identityNames(key *openpgp.Entity) string {
	names := slices.Sorted(maps.Keys(key.Identities))
	for i, name := range names {
		if len(key.Identities[name].Revocations) > 0 {
			names[i] += " (revoked)"
		}
	}
	return strings.Join(names, ", ")
}

// checkSSHSigned checks c's SSH signature against the allowed signers.
func checkSSHSigned(c *object.Commit, signers []allowedSigner, refuse func(string, ...any) error) error {
	if len(signers) == 0 {
		return refuse("is SSH-signed, but no allowed signers are configured (--allowed-signers)")
	}
	encoded := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(encoded); err != nil {
		return fmt.Errorf("verify commit %s: %w", short(c.Hash), err)
	}
	r, err := encoded.Reader()
	if err != nil {
		return fmt.Errorf("verify commit %s: %w", short(c.Hash), err)
	}
	message, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("verify commit %s: %w", short(c.Hash), err)
	}
	fingerprint, err := verifySSH(c.PGPSignature, message, c.Committer.Email, signers)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errUnknownSigner):
		return refuse("is signed by SSH key %s, which the allowed signers do not list for %s", fingerprint, c.Committer.Email)
	default:
		return refuse("has a bad signature: %v", err)
	}
}

// subject is the first line of a commit message.
func subject(msg string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	return line
}
