package source

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSH signatures of commits (git's gpg.format=ssh) are in OpenSSH's SSHSIG
// format: an armored blob holding the signer's public key, a namespace
// ("git" for commits), a hash algorithm and a signature over a small
// structure that contains the hash of the signed data. The keys allowed to
// sign are listed in git's allowed-signers format (gpg.ssh.allowedSignersFile).

// sshsigMagic starts both the signature blob and the data it signs.
const sshsigMagic = "SSHSIG"

// gitNamespace is the namespace git signs commits in.
const gitNamespace = "git"

// allowedSigner is one line of an allowed-signers file.
type allowedSigner struct {
	// principals are the email patterns the key may sign as ("*" for any).
	principals []string
	key        ssh.PublicKey
	// namespaces, when set, lists the namespaces the key may sign in.
	namespaces []string
}

// parseAllowedSigners reads an allowed-signers file: one key per line,
// "principals [options] keytype base64-key [comment]", where principals is
// a comma-separated list of email patterns (with * and ?) and the only
// option understood is namespaces="...". Blank lines and # comments are
// skipped. Anything else is an error naming the line, so a key is never
// silently left out.
func parseAllowedSigners(text string) ([]allowedSigner, error) {
	var signers []allowedSigner
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("allowed signers line %d: want \"principals [options] keytype key\"", n)
		}
		principals, rest := line[:i], line[i+1:]
		s := allowedSigner{principals: strings.Split(principals, ",")}
		// The rest is an authorized_keys line: options, key type, key.
		key, _, opts, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil {
			return nil, fmt.Errorf("allowed signers line %d: %w", n, err)
		}
		for _, opt := range opts {
			name, value, _ := strings.Cut(opt, "=")
			switch strings.ToLower(name) {
			case "namespaces":
				v, err := strconv.Unquote(value)
				if err != nil {
					v = value
				}
				for _, ns := range strings.Split(v, ",") {
					s.namespaces = append(s.namespaces, strings.TrimSpace(ns))
				}
			default:
				return nil, fmt.Errorf("allowed signers line %d: option %q is not supported (only namespaces=\"git\")", n, name)
			}
		}
		s.key = key
		signers = append(signers, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("allowed signers: %w", err)
	}
	return signers, nil
}

// sshSignature is the decoded SSHSIG blob.
type sshSignature struct {
	Magic     [6]byte
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// signedData is what an SSHSIG signature signs.
type signedData struct {
	Magic     [6]byte
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

// errSSHSignature marks a signature that is malformed or does not verify.
var errSSHSignature = errors.New("bad SSH signature")

// verifySSH checks an armored SSHSIG signature of message, made in git's
// namespace by a key among signers allowed to sign as email, and returns
// the key's fingerprint. A signature by a key not listed (or not for that
// email) is errUnknownSigner.
func verifySSH(armored string, message []byte, email string, signers []allowedSigner) (string, error) {
	block, _ := pem.Decode([]byte(armored))
	if block == nil || block.Type != "SSH SIGNATURE" {
		return "", fmt.Errorf("%w: not an armored SSH signature", errSSHSignature)
	}
	var sig sshSignature
	if err := ssh.Unmarshal(block.Bytes, &sig); err != nil {
		return "", fmt.Errorf("%w: %v", errSSHSignature, err)
	}
	if string(sig.Magic[:]) != sshsigMagic || sig.Version != 1 {
		return "", fmt.Errorf("%w: not an SSHSIG version 1 signature", errSSHSignature)
	}
	if sig.Namespace != gitNamespace {
		return "", fmt.Errorf("%w: made for %q, not for git", errSSHSignature, sig.Namespace)
	}
	key, err := ssh.ParsePublicKey(sig.PublicKey)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errSSHSignature, err)
	}
	var digest []byte
	switch sig.HashAlg {
	case "sha256":
		h := sha256.Sum256(message)
		digest = h[:]
	case "sha512":
		h := sha512.Sum512(message)
		digest = h[:]
	default:
		return "", fmt.Errorf("%w: unknown hash algorithm %q", errSSHSignature, sig.HashAlg)
	}
	var s ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &s); err != nil {
		return "", fmt.Errorf("%w: %v", errSSHSignature, err)
	}
	data := ssh.Marshal(signedData{Magic: sig.Magic, Namespace: sig.Namespace, Reserved: sig.Reserved, HashAlg: sig.HashAlg, Hash: digest})
	fingerprint := ssh.FingerprintSHA256(key)
	if !allowed(signers, key, email) {
		return fingerprint, errUnknownSigner
	}
	if err := key.Verify(data, &s); err != nil {
		return fingerprint, fmt.Errorf("%w: %v", errSSHSignature, err)
	}
	return fingerprint, nil
}

// errUnknownSigner means the signing key is not allowed to sign as the
// committer.
var errUnknownSigner = errors.New("key not among the allowed signers")

// allowed reports whether key may sign commits as email.
func allowed(signers []allowedSigner, key ssh.PublicKey, email string) bool {
	want := key.Marshal()
	for _, s := range signers {
		if !bytes.Equal(s.key.Marshal(), want) {
			continue
		}
		if len(s.namespaces) > 0 && !slices.Contains(s.namespaces, gitNamespace) {
			continue
		}
		for _, p := range s.principals {
			if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(email)); ok {
				return true
			}
		}
	}
	return false
}
