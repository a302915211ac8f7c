// Package sim is a SIMULATED endpoint backend, for demos, the fleet
// simulator and tests. It installs nothing: from a seed it makes up a
// realistic inventory (Windows KBs, Debian packages or Homebrew formulae,
// with categories, severities, CVSS scores, CVEs and release times relative
// to a clock), "installs" updates with a configurable failure rate, and
// counts every install attempt per update so fault-injection tests can
// assert that an update was installed exactly once.
//
// The same seed, family and clock give the same inventory and the same
// install outcomes. With Options.StateDir set, the installed set, the
// install counts and the reboot flag survive a restart of the agent, as
// they would on a real machine. With Options.InstallTime set, each install
// takes that long, and an agent killed meanwhile leaves the attempt
// counted but the update not installed; an install asked for an update
// the machine already has is counted apart (Reinstalls), so a test can
// tell a retry of an interrupted install from an update installed twice.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

// Options configure a simulated endpoint.
type Options struct {
	// Seed picks the inventory and the install outcomes.
	Seed uint64
	// Family is the simulated OS family: "windows" (windows-update KBs),
	// "linux" (apt packages) or "macos" (brew formulae and casks).
	Family string
	// Now is the clock; release times are set relative to its value when
	// the backend is made. Nil means time.Now.
	Now func() time.Time
	// FailureRate is the chance, from 0 to 1, that an install attempt
	// fails.
	FailureRate float64
	// StateDir, when set, is where the simulated machine keeps its state
	// (sim-state.json) across restarts.
	StateDir string
	// InstallTime is how long installing one update takes (real time,
	// whatever Now says); zero is at once. The attempt is written to the
	// state file before the wait and the update marked installed after it.
	InstallTime time.Duration
}

// StateFile is the file under Options.StateDir that holds the simulated
// machine's state.
const StateFile = "sim-state.json"

// Backend is a simulated endpoint. It is safe for concurrent use.
type Backend struct {
	opts      Options
	source    string
	catalogue []*protocol.Update // made once from the seed; never changed

	mu sync.Mutex // guards st and writes of the state file
	st persisted
}

// persisted is what a simulated machine remembers.
type persisted struct {
	// Installed maps update ids installed by the simulation to when.
	Installed map[string]time.Time `json:"installed"`
	// Installs counts install attempts per update id.
	Installs map[string]int `json:"installs"`
	// Reinstalls counts install attempts of an update that was already
	// installed (by the simulation or from the start): an update installed
	// twice. An exactly-once rollout leaves it empty.
	Reinstalls    map[string]int `json:"reinstalls,omitempty"`
	RebootPending bool           `json:"rebootPending"`
	// Removed maps update ids the simulation rolled back to when; an
	// update the machine came with is then no longer installed.
	Removed map[string]time.Time `json:"removed,omitempty"`
	// Prompts are the reboot prompts and notices shown, oldest first.
	Prompts []Prompt `json:"prompts,omitempty"`
	// Reboots counts simulated reboots.
	Reboots int `json:"reboots,omitempty"`
}

// New makes a simulated endpoint, reading its saved state when
// Options.StateDir holds one.
func New(opts Options) (*Backend, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FailureRate < 0 || opts.FailureRate > 1 {
		return nil, fmt.Errorf("sim: failure rate %v is not between 0 and 1", opts.FailureRate)
	}
	if opts.InstallTime < 0 {
		return nil, fmt.Errorf("sim: install time %v is negative", opts.InstallTime)
	}
	b := &Backend{opts: opts, st: persisted{Installed: map[string]time.Time{}, Installs: map[string]int{}, Reinstalls: map[string]int{}, Removed: map[string]time.Time{}}}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9a7c41e))
	now := opts.Now().UTC()
	switch opts.Family {
	case "windows":
		b.source, b.catalogue = "windows-update", windowsCatalogue(rng, now)
	case "linux":
		b.source, b.catalogue = "apt", packageCatalogue(rng, now, "apt", aptPackages)
	case "macos":
		b.source, b.catalogue = "brew", packageCatalogue(rng, now, "brew", brewPackages)
	default:
		return nil, fmt.Errorf("sim: OS family %q is not windows, linux or macos", opts.Family)
	}
	if opts.StateDir != "" {
		data, err := os.ReadFile(filepath.Join(opts.StateDir, StateFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("sim: %w", err)
		default:
			if err := json.Unmarshal(data, &b.st); err != nil {
				return nil, fmt.Errorf("sim: %s: %w", filepath.Join(opts.StateDir, StateFile), err)
			}
			if b.st.Installed == nil {
				b.st.Installed = map[string]time.Time{}
			}
			if b.st.Installs == nil {
				b.st.Installs = map[string]int{}
			}
			if b.st.Reinstalls == nil {
				b.st.Reinstalls = map[string]int{}
			}
			if b.st.Removed == nil {
				b.st.Removed = map[string]time.Time{}
			}
		}
	}
	return b, nil
}

// Inventory reports the simulated machine's updates: what it came with,
// plus what the simulation installed since.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// A package whose upgrade was installed no longer has its old version.
	replaced := map[string]bool{}
	for _, u := range b.catalogue {
		if _, ok := b.st.Installed[u.ID]; ok && u.InstalledVersion != "" && u.InstalledVersion != u.Version {
			replaced[u.Name+"@"+u.InstalledVersion] = true
		}
	}
	var out []*protocol.Update
	for _, c := range b.catalogue {
		if replaced[c.ID] {
			continue
		}
		u := *c
		u.CVEs = append([]string(nil), c.CVEs...)
		u.Requires = append([]string(nil), c.Requires...)
		if at, ok := b.st.Installed[u.ID]; ok {
			at := at
			u.Installed, u.InstalledAt, u.InstalledVersion = true, &at, u.Version
		} else if _, ok := b.st.Removed[u.ID]; ok && u.Installed {
			u.Installed, u.InstalledAt, u.InstalledVersion = false, nil, ""
		}
		out = append(out, &u)
	}
	return out, nil
}

// Install "installs" each update in order. An attempt fails when the
// update is unknown, when an update it requires is not installed, or by
// chance at the configured failure rate; every attempt is counted, even one
// for an update already installed (that one in Reinstalls too). The
// context ending stops it between updates or during an install's wait.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	byID := map[string]*protocol.Update{}
	for _, c := range b.catalogue {
		byID[c.ID] = c
	}
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		res, err := b.install(ctx, byID, u.ID)
		if err != nil {
			return results, err
		}
		results = append(results, res)
	}
	return results, nil
}

func (b *Backend) install(ctx context.Context, byID map[string]*protocol.Update, id string) (run.Result, error) {
	attempt, err := b.begin(id)
	if err != nil {
		return run.Result{}, err
	}
	if b.opts.InstallTime > 0 {
		// The wait holds no lock: Inventory and RebootPending answer
		// meanwhile, as a real machine's would during an install.
		t := time.NewTimer(b.opts.InstallTime)
		select {
		case <-ctx.Done():
			t.Stop()
			return run.Result{}, ctx.Err()
		case <-t.C:
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res := run.Result{Update: id}
	c, known := byID[id]
	_, done := b.st.Installed[id]
	switch {
	case !known:
		res.Error = fmt.Sprintf("simulated endpoint has no update %q", id)
	case (c.Installed && b.st.Removed[id].IsZero()) || done:
		b.st.Reinstalls[id]++
		res.Succeeded, res.Output = true, "simulated: already installed"
	case b.missing(c) != "":
		res.Error = fmt.Sprintf("simulated: %s requires %s, which is not installed", id, b.missing(c))
	case b.fails(id, attempt):
		res.Error, res.Output = b.failure(), "simulated install failure (injected)"
	default:
		b.st.Installed[id] = b.opts.Now().UTC()
		delete(b.st.Removed, id)
		if c.RebootRequired {
			b.st.RebootPending = true
		}
		res.Succeeded, res.Output = true, "simulated: installed "+id
	}
	if err := b.save(); err != nil {
		return res, err
	}
	return res, nil
}

// begin counts an install attempt of id and, when installs take time,
// writes it to the state file before the install "runs", so an agent
// killed during the install leaves it counted but not installed.
func (b *Backend) begin(id string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Installs[id]++
	if b.opts.InstallTime > 0 {
		if err := b.save(); err != nil {
			return 0, err
		}
	}
	return b.st.Installs[id], nil
}

// missing returns the first update c requires that is not installed.
func (b *Backend) missing(c *protocol.Update) string {
	for _, r := range c.Requires {
		installed := false
		for _, d := range b.catalogue {
			if d.ID == r && d.Installed && b.st.Removed[d.ID].IsZero() {
				installed = true
			}
		}
		if _, ok := b.st.Installed[r]; !ok && !installed {
			return r
		}
	}
	return ""
}

// fails decides an attempt's fate from the seed, the update and the
// attempt number alone, so a rerun of a scenario fails the same way.
func (b *Backend) fails(id string, attempt int) bool {
	if b.opts.FailureRate <= 0 {
		return false
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", b.opts.Seed, id, attempt)
	return float64(h.Sum64()>>11)/(1<<53) < b.opts.FailureRate
}

// failure is the error a real tool of the simulated family would give.
func (b *Backend) failure() string {
	switch b.source {
	case "windows-update":
		return "simulated: install failed (HRESULT 0x80070643)"
	case "apt":
		return "simulated: dpkg: error processing package (--configure): installed post-installation script subprocess returned error exit status 1"
	default:
		return "simulated: Error: An exception occurred within a child process: DownloadError"
	}
}

// save writes the state file, when there is one, atomically: a crash
// leaves the old or the new state, never half of one. Callers hold mu.
func (b *Backend) save() error {
	if b.opts.StateDir == "" {
		return nil
	}
	data, err := json.MarshalIndent(b.st, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := os.MkdirAll(b.opts.StateDir, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(b.opts.StateDir, StateFile), data, 0o600); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// RebootPending reports whether an installed update asked for a reboot.
func (b *Backend) RebootPending(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.RebootPending, nil
}

// Installs returns how many times Install was asked to install the update
// with this id, across restarts when a StateDir is kept.
func (b *Backend) Installs(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Installs[id]
}

// Reinstalls returns how many times Install was asked to install the
// update with this id while it was installed already.
func (b *Backend) Reinstalls(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Reinstalls[id]
}

// sortByName orders a catalogue by name, installed versions first.
func sortByName(us []*protocol.Update) {
	sort.SliceStable(us, func(i, j int) bool {
		if us[i].Name != us[j].Name {
			return us[i].Name < us[j].Name
		}
		return us[i].Installed && !us[j].Installed
	})
}
