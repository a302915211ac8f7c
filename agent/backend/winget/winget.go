// Package winget is the backend for Windows applications managed by the
// Windows Package Manager.
//
// The winget CLI prints tables meant for people (truncated names,
// localised headers) and has no JSON listing, so the inventory comes from
// the Microsoft.WinGet.Client PowerShell module (Get-WinGetPackage),
// projected to JSON; installs use the winget CLI with an exact id and
// version, silently, accepting agreements, and its documented exit codes.
// A job whose id or version winget could read as an option or a second
// argument is refused before anything runs (see Check).
// winget reports no categories, severities or CVEs: every update is a
// "bugfix" with no severity. Nor does the inventory carry a release date (a
// manifest's optional ReleaseDate is not among the fields InventoryScript
// reads), so Released stays zero and the controller counts an update's age
// from when its fleet first saw it.
//
// The backend only builds command lines, so it compiles everywhere. It is
// tested against recorded outputs and has not yet been exercised on a real
// Windows machine.
package winget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/patchline/patchline/agent/backend/internal/argcheck"
	"github.com/patchline/patchline/agent/backend/internal/winos"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Source is the protocol.Update.Source of updates this backend reports.
const Source = "winget"

// InventoryScript lists installed packages and their newer versions as a
// JSON array.
const InventoryScript = `Import-Module Microsoft.WinGet.Client
$list = foreach ($p in Get-WinGetPackage) {
  [ordered]@{
    id                = [string]$p.Id
    name              = [string]$p.Name
    installedVersion  = [string]$p.InstalledVersion
    source            = [string]$p.Source
    isUpdateAvailable = [bool]$p.IsUpdateAvailable
    availableVersions = @($p.AvailableVersions | ForEach-Object { [string]$_ })
  }
}
ConvertTo-Json -InputObject @($list) -Depth 3 -Compress
`

// Backend manages Windows applications with winget.
type Backend struct{ run run.Runner }

// New returns a winget backend that runs its commands through r.
func New(r run.Runner) *Backend { return &Backend{run: r} }

// wgPackage is one package as InventoryScript prints it.
type wgPackage struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	InstalledVersion  string   `json:"installedVersion"`
	Source            string   `json:"source"`
	IsUpdateAvailable bool     `json:"isUpdateAvailable"`
	AvailableVersions []string `json:"availableVersions"`
}

// Inventory reports every installed package and, for those a winget source
// offers a newer version of, that version.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	out, err := winos.PowerShell(ctx, b.run, InventoryScript, nil)
	if err != nil {
		return nil, fmt.Errorf("winget inventory: %w", err)
	}
	return parseInventory(out)
}

// parseInventory turns InventoryScript's JSON into updates.
func parseInventory(out []byte) ([]*protocol.Update, error) {
	var pkgs []wgPackage
	if err := json.Unmarshal(out, &pkgs); err != nil {
		return nil, fmt.Errorf("winget inventory output: %w", err)
	}
	var updates []*protocol.Update
	for i, p := range pkgs {
		if p.ID == "" || p.InstalledVersion == "" {
			return nil, fmt.Errorf("winget inventory output: package %d (%q) lacks an id or installed version", i, p.Name)
		}
		updates = append(updates, &protocol.Update{
			ID:               p.ID + "@" + p.InstalledVersion,
			Source:           Source,
			Name:             p.ID,
			Title:            p.Name,
			Version:          p.InstalledVersion,
			InstalledVersion: p.InstalledVersion,
			Installed:        true,
		})
		// AvailableVersions is newest first; only a package that came
		// from a source can be upgraded by winget, and the Store source
		// names no version ("Unknown", or none) that an exact install
		// could ask for.
		if !p.IsUpdateAvailable || p.Source == "" || len(p.AvailableVersions) == 0 {
			continue
		}
		v := p.AvailableVersions[0]
		if v == "" || v == "Unknown" {
			continue
		}
		updates = append(updates, &protocol.Update{
			ID:               p.ID + "@" + v,
			Source:           Source,
			Name:             p.ID,
			Title:            p.Name,
			Version:          v,
			InstalledVersion: p.InstalledVersion,
			Category:         "bugfix",
		})
	}
	sort.SliceStable(updates, func(i, j int) bool { return updates[i].Name < updates[j].Name })
	return updates, nil
}

// maxLength bounds package identifiers and versions as winget's manifest
// schema does (PackageIdentifier and PackageVersion: 128 characters).
const maxLength = 128

// chars are the characters of identifiers and versions a job may hold.
var chars = argcheck.Set{Letters: argcheck.AnyCase, Punct: "._+-"}

// Check reports why winget could read update u's package identifier (its
// Name) or version as anything but one exact package version (an option,
// a second argument, a search), or nil; the error names the field and the
// rule it breaks. An identifier is Publisher.Package (dot-separated
// segments, Microsoft.VisualStudioCode, Notepad++.Notepad++) or a Store
// product id (9NBLGGH4NNS1): letters, digits and . _ + -, starting with a
// letter or digit, at most 128 characters, no empty segment. A version is
// made of the same characters. Install refuses a job holding such an
// update before running anything.
func Check(u *protocol.Update) error {
	err := argcheck.Word(u.Name, maxLength, chars)
	if err == nil && slices.Contains(strings.Split(u.Name, "."), "") {
		err = errors.New("it has an empty segment; an identifier is Publisher.Package, segments joined by single dots")
	}
	if err != nil {
		return fmt.Errorf("update %q: name %q is not a winget package identifier: %w", u.ID, u.Name, err)
	}
	if err := argcheck.Word(u.Version, maxLength, chars); err != nil {
		return fmt.Errorf("update %q: version %q is not a winget version: %w", u.ID, u.Version, err)
	}
	return nil
}

// winget exit codes (HRESULTs) that Install reads.
const (
	codeUpdateNotApplicable     = 0x8A15002B // no newer version to move to
	codePackageAlreadyInstalled = 0x8A150061
	codeInstallAlreadyInstalled = 0x8A15010D
	codeRebootRequiredToFinish  = 0x8A150109 // installed; a reboot completes it
)

// Install upgrades each package to the update's version with the winget
// CLI, one at a time and in order. Exit codes saying the package is already
// there or needs only a reboot to finish count as success. A job holding an
// update Check refuses runs nothing. The returned error is set only when
// ctx ends.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if u.Source != Source {
			return nil // answered on its own by install
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
		results = append(results, b.install(ctx, u))
	}
	return results, nil
}

func (b *Backend) install(ctx context.Context, u *protocol.Update) run.Result {
	res := run.Result{Update: u.ID}
	if u.Source != Source {
		res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		return res
	}
	// --id and --version name what each value is, and --exact matches the
	// identifier exactly, case included, instead of searching for it.
	args := []string{"upgrade", "--id", u.Name, "--version", u.Version, "--exact", "--silent",
		"--accept-package-agreements", "--accept-source-agreements", "--disable-interactivity"}
	stdout, stderr, err := b.run.Run(ctx, "winget", args, nil)
	res.Output = run.Trim(stdout, stderr)
	if err == nil {
		res.Succeeded = true
		return res
	}
	code, ok := run.ExitCode(err)
	if !ok {
		res.Error = fmt.Sprintf("winget upgrade %s %s: %v", u.Name, u.Version, err)
		return res
	}
	// Windows exit codes are 32-bit HRESULTs; compare them unsigned.
	switch hr := uint32(code); hr {
	case codeUpdateNotApplicable, codePackageAlreadyInstalled, codeInstallAlreadyInstalled, codeRebootRequiredToFinish:
		res.Succeeded = true
	default:
		res.Error = fmt.Sprintf("winget upgrade %s %s: exit code 0x%08X", u.Name, u.Version, hr)
	}
	return res
}

// RebootPending reports whether Windows waits for a reboot.
func (b *Backend) RebootPending(ctx context.Context) (bool, error) {
	return winos.RebootPending(ctx, b.run)
}
