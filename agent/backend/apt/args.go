package apt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/patchline/patchline/agent/backend/internal/argcheck"
	"github.com/patchline/patchline/protocol"
)

// What reaches apt-get's command line: exact package names and versions in
// Debian policy's syntax, nothing apt-get reads as an option, a pattern or
// an operation.
//
// apt-get reads more into an argument than a name and a version. One that
// starts with "-" is an option. One that ends in "-" asks for a removal:
// "hello=1.0-1-" removes hello when no version "1.0-1-" exists, and none
// can, since a Debian revision is never empty. A name no package has is a
// pattern: a regular expression over every package name when it holds
// one of ".?+*|[^$" ("hell.=1.0-2" upgrades hello), a glob when it holds
// one of ".?*[]!", a task when it ends in "^", a search expression when it
// starts with "?" or "~". Debian policy keeps all but "." and "+" out of
// names; those two are in real names (libstdc++6, python3.11), so exactness
// is Install's: it passes apt-get only names dpkg knows exactly, and tells
// apt-get to read no patterns. A trailing "+" asks for an install, which is
// what the backend asks anyway; apt-get looks the whole argument up as a
// name and version first, so real names and versions that end in "+" (g++,
// gcc-bpf 12.2.0-14+deb12u1+) are taken as they are.

// Check reports why apt-get could read update u's name or version as
// anything but one exact package version, or nil; the error names the
// field and the rule it breaks. Install refuses a job holding such an
// update before running anything.
func Check(u *protocol.Update) error {
	if err := checkPackage(u.Name, u.Version); err != nil {
		return fmt.Errorf("update %q: %w", u.ID, err)
	}
	return nil
}

// The characters of each part of a name and a version.
var (
	nameChars     = argcheck.Set{Letters: argcheck.LowerCase, Punct: "+-."}
	archChars     = argcheck.Set{Letters: argcheck.LowerCase}
	digits        = argcheck.Set{Letters: argcheck.NoLetters}
	upstreamChars = argcheck.Set{Letters: argcheck.AnyCase, Punct: ".+~-:"}
	revisionChars = argcheck.Set{Letters: argcheck.AnyCase, Punct: "+.~"}
)

// checkPackage checks a package name and version as Check does; the
// inventory uses it to leave out what a job could not ask for.
func checkPackage(name, version string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("name %q is not a Debian package name: %w", name, err)
	}
	if err := checkVersion(version); err != nil {
		return fmt.Errorf("version %q is not a Debian version: %w", version, err)
	}
	return nil
}

// checkName checks a package name (Debian policy 5.6.1: lowercase
// letters, digits, "+", "-" and ".", at least two characters, starting with
// a letter or digit), optionally qualified with ":arch" as dpkg and apt-get
// print a package of a foreign architecture.
func checkName(s string) error {
	name, arch, qualified := strings.Cut(s, ":")
	switch {
	case name == "":
		return errors.New("it is empty")
	case !nameChars.Alnum(name[0]):
		return errors.New("it must start with a lowercase letter or digit (Debian policy 5.6.1)")
	}
	if r, bad := nameChars.Outside(name); bad {
		return fmt.Errorf("it contains %q; a package name has only %s (Debian policy 5.6.1)", r, nameChars)
	}
	switch {
	case len(name) < 2:
		return errors.New("it is one character long; a package name has at least two (Debian policy 5.6.1)")
	case strings.HasSuffix(name, "-"):
		return errors.New(`it ends in "-", which apt-get reads as "remove"`)
	case qualified:
		return checkArch(arch)
	}
	return nil
}

// checkArch checks the architecture of a qualified name: one dpkg
// architecture (amd64, i386, hurd-i386), lowercase letters and digits
// joined by "-", not a wildcard such as any or linux-any.
func checkArch(arch string) error {
	for _, part := range strings.Split(arch, "-") {
		if _, bad := archChars.Outside(part); part == "" || bad {
			return fmt.Errorf("its architecture %q is not a dpkg architecture name (lowercase letters and digits, joined by -)", arch)
		}
		if part == "any" {
			return fmt.Errorf("its architecture %q is a wildcard, not one architecture", arch)
		}
	}
	return nil
}

// checkVersion checks a version as Debian policy 5.6.12 writes it:
// [epoch:]upstream[-revision], the epoch a number, the upstream version
// starting with a digit and made of letters, digits and ". + ~" (with "-"
// only when a revision follows and ":" only after an epoch), the revision,
// after the last "-", made of letters, digits and "+ . ~".
func checkVersion(v string) error {
	if v == "" {
		return errors.New("it is empty")
	}
	epoch, rest, hasEpoch := strings.Cut(v, ":")
	if !hasEpoch {
		rest = v
	} else if _, bad := digits.Outside(epoch); epoch == "" || bad {
		return fmt.Errorf("its epoch %q (before the first \":\") is not a number (Debian policy 5.6.12)", epoch)
	}
	upstream := rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		revision := rest[i+1:]
		upstream = rest[:i]
		if revision == "" {
			return errors.New(`it ends in "-": its Debian revision, after the last "-", is empty (Debian policy 5.6.12), and apt-get reads a trailing "-" as "remove"`)
		}
		if r, bad := revisionChars.Outside(revision); bad {
			return fmt.Errorf("its Debian revision %q contains %q; a revision has only %s (Debian policy 5.6.12)", revision, r, revisionChars)
		}
	}
	switch {
	case upstream == "":
		return errors.New("its upstream version is empty (Debian policy 5.6.12)")
	case upstream[0] < '0' || upstream[0] > '9':
		return fmt.Errorf("its upstream version %q must start with a digit (Debian policy 5.6.12)", upstream)
	}
	// A "-" left in upstream comes before the revision's, and a ":" after
	// the epoch's: both are allowed there.
	if r, bad := upstreamChars.Outside(upstream); bad {
		return fmt.Errorf("its upstream version %q contains %q; an upstream version has only letters, digits and . + ~ (- only before a Debian revision, : only after an epoch) (Debian policy 5.6.12)", upstream, r)
	}
	return nil
}

// installArgs is the apt-get command line that installs exactly version of
// package name, both checked by Check: "--" ends the options, and
// APT::Cmd::Pattern-Only keeps apt-get (2.0 and later; older versions
// ignore it) from reading the name as a regular expression or glob when no
// package has it.
func installArgs(name, version string) []string {
	return []string{"install", "-y", "-q", "--only-upgrade", "-o", "Dpkg::Options::=--force-confold",
		"-o", "APT::Cmd::Pattern-Only=true", "--", name + "=" + version}
}
