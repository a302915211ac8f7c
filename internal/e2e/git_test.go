package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/reconciler/source"
)

// commitSigned commits the repo's changes as the fleet lead
// (lead@msp.example), signed with key (go-git signs), and returns the
// commit.
func (r *fleetRepo) commitSigned(key *openpgp.Entity, msg string) string {
	r.t.Helper()
	repo, err := git.PlainOpen(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		r.t.Fatal(err)
	}
	sig := &object.Signature{Name: "Fleet Lead", Email: "lead@msp.example", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, SignKey: key, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// resetTo moves the branch back to rev, as a force-push does.
func (r *fleetRepo) resetTo(rev string) {
	r.t.Helper()
	gittest.Run(r.t, r.env, r.dir, "reset", "--quiet", "--hard", rev)
}

// TestGitAttacksUnderRequireSigned: with signed commits required, each
// attack on the fleet repo is refused and the last good revision keeps
// running.
func TestGitAttacksUnderRequireSigned(t *testing.T) {
	lead, leadKey := gittest.SigningKey(t, "Fleet Lead", "lead@msp.example")
	tech, techKey := gittest.SigningKey(t, "Tech", "tech@msp.example")
	keyring := leadKey + techKey
	intruder, _ := gittest.SigningKey(t, "Intruder", "intruder@example.com")
	change := func(r *fleetRepo, n int) {
		r.write(map[string]string{"clients/acme/policy.cue": acmeCUE + fmt.Sprintf("// change %d\n", n)})
	}
	tests := []struct {
		name string
		// attack changes the repo, starting from the good signed revision,
		// and returns the head the controller must refuse ("" when it
		// must refuse nothing new).
		attack func(r *fleetRepo, good string) string
	}{
		{"an unsigned commit under a signed head", func(r *fleetRepo, good string) string {
			change(r, 1)
			r.commit("Unsigned change")
			change(r, 2)
			return r.commitSigned(lead, "Signed change on top")
		}},
		{"a commit signed by a key outside the keyring", func(r *fleetRepo, good string) string {
			change(r, 1)
			return r.commitSigned(intruder, "Change signed by someone else")
		}},
		{"a commit signed by a keyring key whose owner is not the committer", func(r *fleetRepo, good string) string {
			change(r, 1)
			return r.commitSigned(tech, "Change committed as the lead, signed by a technician")
		}},
		{"a force-push to an older commit", func(r *fleetRepo, good string) string {
			parent := gittest.Run(t, r.env, r.dir, "rev-parse", good+"^")
			r.resetTo(parent)
			return parent
		}},
		{"a signed commit on top of a refused unsigned one", func(r *fleetRepo, good string) string {
			change(r, 1)
			unsigned := r.commit("Unsigned change")
			waitHead(t, r, unsigned)
			change(r, 2)
			return r.commitSigned(lead, "Signed change on top of the refused one")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := newFleetRepo(t, "7d", approveNothing)
			change(repo, 0)
			good := repo.commitSigned(lead, "Signed policy")
			cfg := controllerConfig(t, repo)
			cfg.Verify = requireSigned(t, repo, keyring, good)
			c := startController(t, cfg)
			repo.base = c.URL
			if got := applied(status(t, c.URL), client); got != good {
				t.Fatalf("applied %s at start, want the signed %s", got, good)
			}
			bad := tt.attack(repo, good)
			st := waitHead(t, repo, bad)
			if st.Refused == nil || st.Refused.Revision != bad {
				t.Errorf("refused %+v, want %s refused", st.Refused, bad)
			}
			if got := applied(st, client); got != good {
				t.Errorf("acme runs %s, want the last good %s", got, good)
			}
		})
	}

	t.Run("an unsigned commit under the first head", func(t *testing.T) {
		repo := newFleetRepo(t, "7d", approveNothing)
		start := gittest.Run(t, repo.env, repo.dir, "rev-parse", "HEAD")
		change(repo, 1)
		unsigned := repo.commit("Unsigned change")
		change(repo, 2)
		head := repo.commitSigned(lead, "Signed change on top")
		cfg := controllerConfig(t, repo)
		cfg.Verify = source.VerifyPolicy{RequireSigned: true, Keyring: keyring, TrustFrom: plumbing.NewHash(start)}
		st := patchdtest.Start(t, cfg).Status() // once the head is applied or refused
		if st.Refused == nil || st.Refused.Revision != head || !strings.Contains(strings.Join(st.Refused.Problems, " "), unsigned[:12]) {
			t.Errorf("refused %+v, want the head %s refused for the unsigned %s", st.Refused, head, unsigned)
		}
		if got := applied(st, client); got != "" {
			t.Errorf("acme runs %s, want nothing applied", got)
		}
	})

	t.Run("going back to the last good revision after a refusal", func(t *testing.T) {
		repo := newFleetRepo(t, "7d", approveNothing)
		change(repo, 0)
		good := repo.commitSigned(lead, "Signed policy")
		cfg := controllerConfig(t, repo)
		cfg.Verify = requireSigned(t, repo, keyring, good)
		c := startController(t, cfg)
		repo.base = c.URL
		change(repo, 1)
		unsigned := repo.commit("Unsigned change")
		waitHead(t, repo, unsigned)
		// The technician reverts the branch to the good commit.
		repo.resetTo(good)
		st := waitHead(t, repo, good)
		if st.Refused != nil && st.Refused.Revision == good {
			t.Errorf("the last good revision %s was refused when the branch went back to it: %+v", good, st.Refused)
		}
		if got := applied(st, client); got != good {
			t.Errorf("acme runs %s, want %s", got, good)
		}
	})
}

// requireSigned requires commits signed by a key in keyring, trusting the
// repo as it was before the signed commit good: good is checked, like
// every commit after it.
func requireSigned(t *testing.T, r *fleetRepo, keyring, good string) source.VerifyPolicy {
	t.Helper()
	anchor := gittest.Run(t, r.env, r.dir, "rev-parse", good+"^")
	return source.VerifyPolicy{RequireSigned: true, Keyring: keyring, TrustFrom: plumbing.NewHash(anchor)}
}

// waitHead waits until the controller has looked at head (applied or
// refused it) and returns the status.
func waitHead(t *testing.T, r *fleetRepo, head string) (st reconcilerStatus) {
	t.Helper()
	waitFor(t, "the controller to look at "+head, 30*time.Second, func() (bool, string) {
		st = status(t, r.base)
		return st.Head == head, fmt.Sprintf("head %s", st.Head)
	})
	return st
}
