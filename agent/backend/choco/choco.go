// Package choco is the backend for Windows software managed by Chocolatey.
//
// It reads Chocolatey's limit-output mode (-r), which prints one
// pipe-separated record a line: `choco list -r` gives "name|version" for
// installed packages and `choco outdated -r` gives
// "name|current|available|pinned". Chocolatey reports no categories,
// severities or CVEs: every update is a "bugfix" with no severity. These
// records carry no publish date either, so Released stays zero and the
// controller counts an update's age from when its fleet first saw it.
// Packages pinned in Chocolatey are not reported as upgradable, since
// `choco upgrade` leaves them alone. A job whose id or version Chocolatey
// could read as an option, another package or a file is refused before
// anything runs (see Check).
//
// The backend only builds command lines, so it compiles everywhere. It is
// tested against recorded outputs and has not yet been exercised on a real
// Windows machine.
package choco

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/patchline/patchline/agent/backend/internal/argcheck"
	"github.com/patchline/patchline/agent/backend/internal/winos"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Source is the protocol.Update.Source of updates this backend reports.
const Source = "choco"

// Backend manages Chocolatey packages.
type Backend struct{ run run.Runner }

// New returns a choco backend that runs its commands through r.
func New(r run.Runner) *Backend { return &Backend{run: r} }

// ok reports whether a choco exit code means success. With Chocolatey's
// enhanced exit codes, `choco outdated` exits 2 when it found outdated
// packages, and installers exit 1641 or 3010 when they need a reboot.
func ok(err error, also ...int) bool {
	if err == nil {
		return true
	}
	code, known := run.ExitCode(err)
	if !known {
		return false
	}
	for _, c := range also {
		if code == c {
			return true
		}
	}
	return false
}

// Inventory reports every installed package and each upgrade Chocolatey's
// sources offer for one that is not pinned.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	out, stderr, err := b.run.Run(ctx, "choco", []string{"list", "-r"}, nil)
	if !ok(err) {
		return nil, fmt.Errorf("choco list: %w: %s", err, bytes.TrimSpace(stderr))
	}
	installed, err := parseRecords(out, 2)
	if err != nil {
		return nil, fmt.Errorf("choco list: %w", err)
	}
	out, stderr, err = b.run.Run(ctx, "choco", []string{"outdated", "-r", "--ignore-unfound"}, nil)
	if !ok(err, 2) {
		return nil, fmt.Errorf("choco outdated: %w: %s", err, bytes.TrimSpace(stderr))
	}
	outdated, err := parseRecords(out, 4)
	if err != nil {
		return nil, fmt.Errorf("choco outdated: %w", err)
	}
	var updates []*protocol.Update
	for _, f := range installed {
		updates = append(updates, &protocol.Update{
			ID: f[0] + "@" + f[1], Source: Source, Name: f[0],
			Version: f[1], InstalledVersion: f[1], Installed: true,
		})
	}
	for _, f := range outdated {
		if strings.EqualFold(f[3], "true") || f[1] == f[2] {
			continue
		}
		updates = append(updates, &protocol.Update{
			ID: f[0] + "@" + f[2], Source: Source, Name: f[0],
			Version: f[2], InstalledVersion: f[1], Category: "bugfix",
		})
	}
	sort.SliceStable(updates, func(i, j int) bool { return updates[i].Name < updates[j].Name })
	return updates, nil
}

// parseRecords reads limit-output records of n pipe-separated fields.
// Lines without a pipe are Chocolatey's notices and are skipped; a record
// with the wrong number of fields or an empty name or version is an error.
func parseRecords(out []byte, n int) ([][]string, error) {
	var recs [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if !strings.Contains(text, "|") {
			continue
		}
		f := strings.Split(text, "|")
		if len(f) != n {
			return nil, fmt.Errorf("line %d: want %d fields separated by |, got %q", line, n, text)
		}
		for i := range n {
			f[i] = strings.TrimSpace(f[i])
		}
		if f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("line %d: empty package name or version in %q", line, text)
		}
		recs = append(recs, f)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return recs, nil
}

// The characters of package ids (NuGet's) and versions a job may hold, and
// their lengths: NuGet ids have at most 100 characters.
var (
	idChars      = argcheck.Set{Letters: argcheck.AnyCase, Punct: "._-"}
	versionChars = argcheck.Set{Letters: argcheck.AnyCase, Punct: ".+-"}
)

const (
	maxIDLength      = 100
	maxVersionLength = 128
)

// Check reports why Chocolatey could read update u's package id (its Name)
// or version as anything but one exact package version (an option, a
// second package, every package, a packages.config file), or nil; the
// error names the field and the rule it breaks. An id is letters, digits
// and . _ -, starting with a letter or digit, at most 100 characters, and
// neither "all" nor a name ending in ".config"; a version starts with a
// digit and has letters, digits and . + -. Install refuses a job holding
// such an update before running anything.
func Check(u *protocol.Update) error {
	err := argcheck.Word(u.Name, maxIDLength, idChars)
	switch {
	case err != nil:
	case strings.EqualFold(u.Name, "all"):
		err = errors.New(`"choco upgrade all" upgrades every package`)
	case strings.HasSuffix(strings.ToLower(u.Name), ".config"):
		err = errors.New(`a name ending in ".config" is a packages.config file to Chocolatey`)
	}
	if err != nil {
		return fmt.Errorf("update %q: name %q is not a Chocolatey package id: %w", u.ID, u.Name, err)
	}
	err = argcheck.Word(u.Version, maxVersionLength, versionChars)
	if err == nil && (u.Version[0] < '0' || u.Version[0] > '9') {
		err = errors.New("it must start with a digit")
	}
	if err != nil {
		return fmt.Errorf("update %q: version %q is not a Chocolatey version: %w", u.ID, u.Version, err)
	}
	return nil
}

// upgradeArgs is the choco command line that upgrades package id to
// version: the options first, then "--", after which Chocolatey reads no
// option.
func upgradeArgs(id, version string) []string {
	return []string{"upgrade", "--version=" + version, "-y", "-r", "--no-progress", "--", id}
}

// Install upgrades each package to the update's version, one at a time
// and in order. A job holding an update Check refuses runs nothing. The
// returned error is set only when ctx ends.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if u.Source != Source {
			return nil // answered on its own below
		}
		return Check(u)
	}); refused != nil {
		return refused, nil
	}
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res := run.Result{Update: u.ID}
		if u.Source != Source {
			res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		} else {
			stdout, stderr, err := b.run.Run(ctx, "choco", upgradeArgs(u.Name, u.Version), nil)
			res.Output = run.Trim(stdout, stderr)
			if ok(err, 1641, 3010) {
				res.Succeeded = true
			} else {
				res.Error = fmt.Sprintf("choco upgrade %s %s: %v", u.Name, u.Version, err)
			}
		}
		results = append(results, res)
	}
	return results, nil
}

// RebootPending reports whether Windows waits for a reboot.
func (b *Backend) RebootPending(ctx context.Context) (bool, error) {
	return winos.RebootPending(ctx, b.run)
}
