// Package wua is the windows-update backend: it drives the Windows Update
// Agent through its COM API (Microsoft.Update.Session) from PowerShell
// scripts that print JSON, and installs updates by KB number.
//
// Categories come from Windows Update's classification ("Security
// Updates" → security, "Critical Updates" → critical, "Drivers" → driver,
// "Feature Packs", "Service Packs" and "Upgrades" → feature, anything else
// → bugfix); severities from the MSRC severity rating; CVEs, release time
// (LastDeploymentChangeTime) and reboot behaviour as Windows reports them.
//
// Only KB numbers and update ids reach the install script: a job holding
// anything else is refused before anything runs (see Check).
//
// The backend only builds command lines, so it compiles everywhere. It is
// tested against recorded outputs and has not yet been exercised on a real
// Windows machine.
package wua

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend/internal/winos"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Source is the protocol.Update.Source of updates this backend reports.
const Source = "windows-update"

// InventoryScript lists updates as JSON; InstallScript installs the
// updates named in $env:PATCHLINE_UPDATES and reports each as JSON.
var (
	//go:embed inventory.ps1
	InventoryScript string
	//go:embed install.ps1
	InstallScript string
)

// Backend manages Windows updates through the Windows Update Agent.
type Backend struct{ run run.Runner }

// New returns a windows-update backend that runs PowerShell through r.
func New(r run.Runner) *Backend { return &Backend{run: r} }

// wuUpdate is one update as inventory.ps1 prints it.
type wuUpdate struct {
	UpdateID       string   `json:"updateId"`
	Revision       int      `json:"revision"`
	Title          string   `json:"title"`
	KBs            []string `json:"kbs"`
	MsrcSeverity   string   `json:"msrcSeverity"`
	Categories     []string `json:"categories"`
	CVEs           []string `json:"cves"`
	Released       string   `json:"released"`
	RebootBehavior int      `json:"rebootBehavior"`
	Installed      bool     `json:"installed"`
}

// Inventory reports Windows Update's available and installed software
// updates.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	out, err := winos.PowerShell(ctx, b.run, InventoryScript, nil)
	if err != nil {
		return nil, fmt.Errorf("windows update search: %w", err)
	}
	return parseInventory(out)
}

// parseInventory turns inventory.ps1's JSON into updates.
func parseInventory(out []byte) ([]*protocol.Update, error) {
	var raw []wuUpdate
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("windows update search output: %w", err)
	}
	updates := make([]*protocol.Update, 0, len(raw))
	for i, w := range raw {
		id := w.UpdateID
		if len(w.KBs) > 0 {
			id = w.KBs[0]
		}
		if id == "" {
			return nil, fmt.Errorf("windows update search output: update %d has neither KB nor update id", i)
		}
		u := &protocol.Update{
			ID:             id,
			Source:         Source,
			Name:           id,
			Title:          w.Title,
			Version:        strconv.Itoa(w.Revision),
			Category:       category(w.Categories),
			Severity:       severity(w.MsrcSeverity),
			CVEs:           w.CVEs,
			RebootRequired: w.RebootBehavior != 0,
			Installed:      w.Installed,
		}
		if u.Installed {
			u.InstalledVersion = u.Version
		}
		if w.Released != "" {
			t, err := time.Parse(time.RFC3339Nano, w.Released)
			if err != nil {
				return nil, fmt.Errorf("windows update search output: %s: release time: %w", id, err)
			}
			u.Released = t.UTC()
		}
		updates = append(updates, u)
	}
	return updates, nil
}

// category maps Windows Update classifications to Patchline categories;
// the other entries of Categories (products such as "Windows 11") are
// ignored.
func category(names []string) string {
	best := "bugfix"
	rank := map[string]int{"bugfix": 0, "feature": 1, "driver": 2, "critical": 3, "security": 4}
	for _, n := range names {
		var c string
		switch n {
		case "Security Updates":
			c = "security"
		case "Critical Updates":
			c = "critical"
		case "Drivers":
			c = "driver"
		case "Feature Packs", "Service Packs", "Upgrades":
			c = "feature"
		default:
			continue
		}
		if rank[c] > rank[best] {
			best = c
		}
	}
	return best
}

// severity maps the MSRC rating to Patchline's severity names; an update
// without a rating has none.
func severity(msrc string) string {
	switch s := strings.ToLower(msrc); s {
	case "critical", "important", "moderate", "low":
		return s
	}
	return ""
}

// validID admits KB numbers and update GUIDs, the only ids Install passes
// to the script.
var validID = regexp.MustCompile(`^(KB[0-9]{4,10}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

// Check reports why update u's name is not one the install script may be
// given, or nil: a KB number (KB and 4 to 10 digits) or an update id (a
// GUID), nothing PowerShell or the list in $env:PATCHLINE_UPDATES could
// read more into. Install refuses a job holding such an update before
// running anything.
func Check(u *protocol.Update) error {
	if !validID.MatchString(u.Name) {
		return fmt.Errorf("update %q: name %q is neither a KB number (KB and 4 to 10 digits) nor an update id (a GUID)", u.ID, u.Name)
	}
	return nil
}

// wuResult is one result as install.ps1 prints it.
type wuResult struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	ResultCode     int    `json:"resultCode"`
	HResult        int32  `json:"hresult"`
	RebootRequired bool   `json:"rebootRequired"`
	Error          string `json:"error"`
}

// resultCodes names WUA's OperationResultCode values.
var resultCodes = map[int]string{0: "not started", 1: "in progress", 2: "succeeded", 3: "succeeded with errors", 4: "failed", 5: "aborted"}

// Install downloads and installs each update, one at a time and in order,
// in one PowerShell run. An update Windows no longer offers because it is
// already installed counts as succeeded. A job holding an update Check
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
	results := make([]run.Result, len(updates))
	var ids []string
	index := map[string]int{} // id → position in updates, for those sent to the script
	for i, u := range updates {
		results[i].Update = u.ID
		_, dup := index[u.Name]
		switch {
		case u.Source != Source:
			results[i].Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		case dup:
			results[i].Error = fmt.Sprintf("update %q: listed twice in one job", u.ID)
		default:
			index[u.Name] = i
			ids = append(ids, u.Name)
		}
	}
	if len(ids) == 0 {
		return results, nil
	}
	out, err := winos.PowerShell(ctx, b.run, InstallScript, []string{"PATCHLINE_UPDATES=" + strings.Join(ids, ",")})
	if ctx.Err() != nil {
		return results, ctx.Err()
	}
	if err != nil {
		for _, i := range index {
			results[i].Error = fmt.Sprintf("windows update install: %v", err)
		}
		return results, nil
	}
	var raw []wuResult
	if err := json.Unmarshal(out, &raw); err != nil {
		for _, i := range index {
			results[i].Error = fmt.Sprintf("windows update install output: %v", err)
			results[i].Output = run.Trim(out, nil)
		}
		return results, nil
	}
	seen := map[string]bool{}
	for _, r := range raw {
		i, ok := index[r.ID]
		if !ok {
			continue
		}
		seen[r.ID] = true
		res := &results[i]
		res.Output = fmt.Sprintf("status %s, result %s, HRESULT 0x%08X, reboot required %t", r.Status, resultCodes[r.ResultCode], uint32(r.HResult), r.RebootRequired)
		switch {
		case r.Status == "alreadyInstalled":
			res.Succeeded = true
		case r.Status == "notFound":
			res.Error = fmt.Sprintf("%s is not offered by Windows Update here (not applicable, superseded or withdrawn)", r.ID)
		case r.Status == "error":
			res.Error = fmt.Sprintf("%s: %s", r.ID, r.Error)
		case r.ResultCode == 2 || r.ResultCode == 3:
			res.Succeeded = true
		default:
			res.Error = fmt.Sprintf("%s: install %s (HRESULT 0x%08X)", r.ID, resultCodes[r.ResultCode], uint32(r.HResult))
		}
	}
	for id, i := range index {
		if !seen[id] {
			results[i].Error = fmt.Sprintf("windows update install: no result for %s", id)
		}
	}
	return results, nil
}

// RebootPending reports whether Windows waits for a reboot.
func (b *Backend) RebootPending(ctx context.Context) (bool, error) {
	return winos.RebootPending(ctx, b.run)
}
