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
// `choco upgrade` leaves them alone.
//
// The backend only builds command lines, so it compiles everywhere. It is
// tested against recorded outputs and has not yet been exercised on a real
// Windows machine.
package choco

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

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

// Package ids and versions Chocolatey uses; anything else in a job never
// reaches the command line.
var (
	validName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	validVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+-]*$`)
)

// Install upgrades each package to the update's version, one at a time
// and in order. The returned error is set only when ctx ends.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res := run.Result{Update: u.ID}
		switch {
		case u.Source != Source:
			res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		case !validName.MatchString(u.Name):
			res.Error = fmt.Sprintf("update %q: %q is not a Chocolatey package id", u.ID, u.Name)
		case !validVersion.MatchString(u.Version):
			res.Error = fmt.Sprintf("update %q: %q is not a Chocolatey version", u.ID, u.Version)
		default:
			stdout, stderr, err := b.run.Run(ctx, "choco", []string{"upgrade", u.Name, "--version=" + u.Version, "-y", "-r", "--no-progress"}, nil)
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
