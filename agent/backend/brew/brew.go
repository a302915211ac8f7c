// Package brew is the backend for macOS software managed by Homebrew,
// formulae and casks alike.
//
// It reads Homebrew's JSON: `brew info --json=v2 --installed` for what is
// installed and `brew outdated --json=v2` for the versions Homebrew would
// upgrade to. Homebrew reports no categories, severities or CVEs: every
// update is a "bugfix" with no severity, and none needs a reboot. Neither
// gives a release date (the times `brew info` gives are install times,
// reported as InstalledAt), so Released stays zero and the controller
// counts an update's age from when its fleet first saw it. Pinned
// formulae are not reported as upgradable, since `brew upgrade` leaves them
// alone.
//
// Homebrew installs only the newest version it knows, so Install refuses
// an update whose version is not the one Homebrew would install now (the
// endpoint reports its new candidate on the next inventory). A job whose
// name or version Homebrew could read as an option, a second argument or
// a path is refused before anything runs (see Check).
//
// The backend only builds command lines, so it compiles everywhere. It is
// tested against recorded outputs and has not yet been exercised on a real
// macOS machine.
package brew

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend/internal/argcheck"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Source is the protocol.Update.Source of updates this backend reports.
const Source = "brew"

// env keeps Homebrew from refreshing itself in the middle of an upgrade,
// so the version it installs is the one the inventory reported.
var env = []string{"HOMEBREW_NO_AUTO_UPDATE=1"}

// Backend manages Homebrew formulae and casks.
type Backend struct{ run run.Runner }

// New returns a brew backend that runs its commands through r.
func New(r run.Runner) *Backend { return &Backend{run: r} }

// info is the part of `brew info --json=v2 --installed` the backend reads.
type info struct {
	Formulae []struct {
		Name string `json:"name"`
		// FullName is the name qualified by its tap, as `brew outdated`
		// names it, for a formula outside homebrew/core.
		FullName  string `json:"full_name"`
		Desc      string `json:"desc"`
		Installed []struct {
			Version string `json:"version"`
			Time    int64  `json:"time"`
		} `json:"installed"`
	} `json:"formulae"`
	Casks []struct {
		Token         string   `json:"token"`
		FullToken     string   `json:"full_token"`
		Name          []string `json:"name"`
		Installed     string   `json:"installed"`
		InstalledTime int64    `json:"installed_time"`
	} `json:"casks"`
}

// outdatedEntry is one formula or cask of `brew outdated --json=v2`.
type outdatedEntry struct {
	Name              string   `json:"name"`
	InstalledVersions []string `json:"installed_versions"`
	CurrentVersion    string   `json:"current_version"`
	Pinned            bool     `json:"pinned"`
}

// outdated is `brew outdated --json=v2`.
type outdated struct {
	Formulae []outdatedEntry `json:"formulae"`
	Casks    []outdatedEntry `json:"casks"`
}

// Inventory refreshes Homebrew, then reports every installed formula and
// cask and each upgrade Homebrew would make.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	if _, stderr, err := b.run.Run(ctx, "brew", []string{"update", "--quiet"}, nil); err != nil {
		return nil, fmt.Errorf("brew update: %w: %s", err, bytes.TrimSpace(stderr))
	}
	out, stderr, err := b.run.Run(ctx, "brew", []string{"info", "--json=v2", "--installed"}, env)
	if err != nil {
		return nil, fmt.Errorf("brew info: %w: %s", err, bytes.TrimSpace(stderr))
	}
	inst, err := parseInfo(out)
	if err != nil {
		return nil, err
	}
	od, err := b.outdated(ctx)
	if err != nil {
		return nil, err
	}
	return inventory(inst, od), nil
}

// parseInfo reads `brew info --json=v2`.
func parseInfo(out []byte) (info, error) {
	var inst info
	if err := json.Unmarshal(out, &inst); err != nil {
		return inst, fmt.Errorf("brew info output: %w", err)
	}
	return inst, nil
}

// inventory turns what `brew info --json=v2 --installed` and `brew
// outdated --json=v2` say into updates: one per installed formula (its
// newest installed version, the one linked) and cask, and one per upgrade
// that is not pinned.
func inventory(inst info, od outdated) []*protocol.Update {
	var updates []*protocol.Update
	installed := func(name, title, version string, unix int64) {
		if name == "" || version == "" {
			return
		}
		u := &protocol.Update{ID: name + "@" + version, Source: Source, Name: name, Title: title,
			Version: version, InstalledVersion: version, Installed: true}
		if unix > 0 {
			at := time.Unix(unix, 0).UTC()
			u.InstalledAt = &at
		}
		updates = append(updates, u)
	}
	for _, f := range inst.Formulae {
		if n := len(f.Installed); n > 0 {
			installed(f.Name, f.Desc, f.Installed[n-1].Version, f.Installed[n-1].Time)
		}
	}
	for _, c := range inst.Casks {
		title := ""
		if len(c.Name) > 0 {
			title = c.Name[0]
		}
		installed(c.Token, title, c.Installed, c.InstalledTime)
	}
	for _, e := range append(od.Formulae, od.Casks...) {
		if e.Pinned || e.Name == "" || e.CurrentVersion == "" {
			continue
		}
		cur := ""
		if n := len(e.InstalledVersions); n > 0 {
			cur = e.InstalledVersions[n-1]
		}
		updates = append(updates, &protocol.Update{ID: e.Name + "@" + e.CurrentVersion, Source: Source, Name: e.Name,
			Version: e.CurrentVersion, InstalledVersion: cur, Category: "bugfix"})
	}
	sort.SliceStable(updates, func(i, j int) bool {
		if updates[i].Name != updates[j].Name {
			return updates[i].Name < updates[j].Name
		}
		return updates[i].Installed && !updates[j].Installed
	})
	return updates
}

func (b *Backend) outdated(ctx context.Context) (outdated, error) {
	out, stderr, err := b.run.Run(ctx, "brew", []string{"outdated", "--json=v2"}, env)
	if err != nil {
		return outdated{}, fmt.Errorf("brew outdated: %w: %s", err, bytes.TrimSpace(stderr))
	}
	return parseOutdated(out)
}

// parseOutdated reads `brew outdated --json=v2`.
func parseOutdated(out []byte) (outdated, error) {
	var od outdated
	if err := json.Unmarshal(out, &od); err != nil {
		return od, fmt.Errorf("brew outdated output: %w", err)
	}
	return od, nil
}

// The characters and lengths of names and versions a job may hold.
var (
	nameChars    = argcheck.Set{Letters: argcheck.LowerCase, Punct: "@+._-"}
	tapChars     = argcheck.Set{Letters: argcheck.AnyCase, Punct: "_-"}
	versionChars = argcheck.Set{Letters: argcheck.AnyCase, Punct: "._+,:-"}
)

const maxLength = 128

// Check reports why Homebrew could read update u's formula or cask name
// or its version as anything but one exact name and version (an option, a
// second argument, a path), or nil; the error names the field and the rule
// it breaks. A name is lowercase letters, digits and @ + . _ -, starting
// with a letter or digit (openssl@3, visual-studio-code), optionally
// qualified by its tap as user/repo/name (hashicorp/tap/terraform); a
// version is letters, digits and . _ + , : - (1.7.1_1, 4.2.1,1234),
// starting with a letter or digit. Each part has at most 128 characters.
// Install refuses a job holding such an update before running anything.
func Check(u *protocol.Update) error {
	if err := checkName(u.Name); err != nil {
		return fmt.Errorf("update %q: name %q is not a Homebrew formula or cask name: %w", u.ID, u.Name, err)
	}
	if err := argcheck.Word(u.Version, maxLength, versionChars); err != nil {
		return fmt.Errorf("update %q: version %q is not a Homebrew version: %w", u.ID, u.Version, err)
	}
	return nil
}

func checkName(s string) error {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 1:
		return argcheck.Word(s, maxLength, nameChars)
	case 3:
		for _, p := range parts[:2] {
			if err := argcheck.Word(p, maxLength, tapChars); err != nil {
				return fmt.Errorf("its tap %q: %w", parts[0]+"/"+parts[1], err)
			}
		}
		if err := argcheck.Word(parts[2], maxLength, nameChars); err != nil {
			return fmt.Errorf("its name in the tap %q: %w", parts[2], err)
		}
		return nil
	default:
		return errors.New(`it has a "/" but is not user/repo/name`)
	}
}

// Install upgrades each formula or cask, one at a time and in order, after
// checking that Homebrew would install exactly the update's version. An
// update Homebrew no longer lists as outdated counts as succeeded when
// brew info shows that version installed. A job holding an update Check
// refuses runs nothing. The returned error is set only when ctx ends.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if u.Source != Source {
			return nil // answered on its own below
		}
		return Check(u)
	}); refused != nil {
		return refused, nil
	}
	od, err := b.outdated(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		results := make([]run.Result, len(updates))
		for i, u := range updates {
			results[i] = run.Result{Update: u.ID, Error: err.Error()}
		}
		return results, nil
	}
	kind := map[string]string{} // outdated name → "--formula" or "--cask"
	candidate := map[string]string{}
	for _, e := range od.Formulae {
		kind[e.Name], candidate[e.Name] = "--formula", e.CurrentVersion
	}
	for _, e := range od.Casks {
		kind[e.Name], candidate[e.Name] = "--cask", e.CurrentVersion
	}
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res := run.Result{Update: u.ID}
		switch k, listed := kind[u.Name]; {
		case u.Source != Source:
			res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		case !listed:
			res.Succeeded, res.Error = b.isInstalled(ctx, u)
		case candidate[u.Name] != u.Version:
			res.Error = fmt.Sprintf("Homebrew would install %s %s, not %s", u.Name, candidate[u.Name], u.Version)
		default:
			// Only a name brew itself listed as outdated gets here, after
			// "--": brew reads no option after it.
			stdout, stderr, err := b.run.Run(ctx, "brew", []string{"upgrade", k, "--", u.Name}, env)
			res.Output = run.Trim(stdout, stderr)
			if err != nil {
				res.Error = fmt.Sprintf("brew upgrade %s %s: %v", k, u.Name, err)
			} else {
				res.Succeeded = true
			}
		}
		results = append(results, res)
	}
	return results, nil
}

// isInstalled checks an update Homebrew does not list as outdated: it is
// done when that version is installed. It reads every installed formula
// and cask rather than naming the update's to brew, which loads a formula
// from a file, a bottle or a tap that a name can point at: a job's name
// reaches brew only when brew itself listed it as outdated.
func (b *Backend) isInstalled(ctx context.Context, u *protocol.Update) (bool, string) {
	out, stderr, err := b.run.Run(ctx, "brew", []string{"info", "--json=v2", "--installed"}, env)
	if err != nil {
		return false, fmt.Sprintf("%s is not outdated and brew info failed: %v: %s", u.Name, err, bytes.TrimSpace(stderr))
	}
	inst, err := parseInfo(out)
	if err != nil {
		return false, err.Error()
	}
	for _, f := range inst.Formulae {
		for _, v := range f.Installed {
			if (f.Name == u.Name || f.FullName == u.Name) && v.Version == u.Version {
				return true, ""
			}
		}
	}
	for _, c := range inst.Casks {
		if (c.Token == u.Name || c.FullToken == u.Name) && c.Installed == u.Version {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%s %s is neither installed nor offered by Homebrew", u.Name, u.Version)
}

// RebootPending is always false: Homebrew formulae and casks never need a
// reboot, and macOS's own updates are not this backend's.
func (b *Backend) RebootPending(context.Context) (bool, error) { return false, nil }
