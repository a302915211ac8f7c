// Package backend is how the agent talks to an endpoint's package managers.
//
// A Backend is one package manager: it lists installed and available
// updates, installs a job's updates in order, and says whether the OS waits
// for a reboot. The implementations live in sub-packages (apt, winget, wua
// for Windows Update, choco, brew, and sim, a simulated endpoint); New picks
// one by name, and "auto" combines every manager found on this machine.
//
// Backends run their tools through a Runner, so tests replay recorded
// outputs (see run/runtest) instead of touching the machine. Each backend
// package has a Check saying which names and versions its tool could read
// as more than one exact package version; a job holding one runs nothing
// (run.RefuseJob), and Multi asks every backend's Check (registered in
// checks) before any of them runs.
package backend

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/brew"
	"github.com/patchline/patchline/agent/backend/choco"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/agent/backend/winget"
	"github.com/patchline/patchline/agent/backend/wua"
	"github.com/patchline/patchline/protocol"
)

// Backend is one package manager on an endpoint.
type Backend interface {
	// Inventory lists installed updates and available ones (Installed set
	// accordingly; for package sources ID is "name@version", Name the
	// package or app id, Version the candidate version and
	// InstalledVersion the current one), with category, severity, CVEs,
	// release time and reboot-required where the source provides them.
	Inventory(ctx context.Context) ([]*protocol.Update, error)
	// Install installs exactly these updates, in order, and reports per
	// update. Its error is for the call as a whole (the context ended);
	// a failed update is a Result with Succeeded false.
	Install(ctx context.Context, updates []*protocol.Update) ([]Result, error)
	// RebootPending reports whether the OS waits for a reboot.
	RebootPending(ctx context.Context) (bool, error)
}

// Rollbacker is a Backend that can take an installed update away,
// returning to the version before it. It is optional: the agent checks
// for it with a type assertion, and a job asking a backend without it to
// roll back fails with "rollback is not supported by the <name> backend".
type Rollbacker interface {
	// Rollback removes each update (Version is the version to take
	// away), in order, and reports per update as Install does.
	Rollback(ctx context.Context, updates []*protocol.Update) ([]Result, error)
}

// Result reports the install of one update.
type Result = run.Result

// Runner runs a package manager's command; run.Exec is the real one.
type Runner = run.Runner

// Names of the backends New knows.
const (
	Apt           = "apt"
	Winget        = "winget"
	WindowsUpdate = "windows-update"
	Choco         = "choco"
	Brew          = "brew"
	Sim           = "sim"
	Auto          = "auto"
)

// Options configure New.
type Options struct {
	// Runner runs the tools; nil means run.Exec.
	Runner Runner
	// Apt configures the apt backend (an isolated root for tests and
	// demos).
	Apt apt.Options
	// Sim configures the simulated endpoint.
	Sim sim.Options
}

// Compile-time checks that every implementation is a Backend.
var (
	_ Backend = (*apt.Backend)(nil)
	_ Backend = (*winget.Backend)(nil)
	_ Backend = (*wua.Backend)(nil)
	_ Backend = (*choco.Backend)(nil)
	_ Backend = (*brew.Backend)(nil)
	_ Backend = (*sim.Backend)(nil)

	_ Rollbacker = (*apt.Backend)(nil)
	_ Rollbacker = (*wua.Backend)(nil)
	_ Rollbacker = (*sim.Backend)(nil)
	_ Rollbacker = (*Multi)(nil)
)

// New returns the backend called name. "auto" detects the package
// managers of this machine (see Detect) and, when there are several,
// combines them into one Backend that routes each update by its Source.
func New(name string, opts Options) (Backend, error) {
	if opts.Runner == nil {
		opts.Runner = run.Exec{}
	}
	switch name {
	case Apt:
		return apt.New(opts.Runner, opts.Apt), nil
	case Winget:
		return winget.New(opts.Runner), nil
	case WindowsUpdate:
		return wua.New(opts.Runner), nil
	case Choco:
		return choco.New(opts.Runner), nil
	case Brew:
		return brew.New(opts.Runner), nil
	case Sim:
		b, err := sim.New(opts.Sim)
		if err != nil {
			return nil, err
		}
		return b, nil
	case Auto:
		names := Detect(runtime.GOOS, exec.LookPath)
		if len(names) == 0 {
			return nil, fmt.Errorf("backend auto: no supported package manager found on %s", runtime.GOOS)
		}
		if len(names) == 1 {
			return New(names[0], opts)
		}
		m := &Multi{bySource: map[string]Backend{}}
		for _, n := range names {
			b, err := New(n, opts)
			if err != nil {
				return nil, err
			}
			m.order = append(m.order, n)
			m.bySource[n] = b
		}
		return m, nil
	default:
		return nil, fmt.Errorf("backend %q: unknown (want apt, winget, windows-update, choco, brew, sim or auto)", name)
	}
}

// Detect returns the backends for an OS whose tools lookPath finds, OS
// updates first: on Windows, windows-update (always there) then winget and
// choco; on macOS, brew; on Linux, apt when apt-get and dpkg-query exist.
func Detect(goos string, lookPath func(string) (string, error)) []string {
	has := func(tools ...string) bool {
		for _, t := range tools {
			if _, err := lookPath(t); err != nil {
				return false
			}
		}
		return true
	}
	var names []string
	switch goos {
	case "windows":
		names = append(names, WindowsUpdate)
		if has("winget") {
			names = append(names, Winget)
		}
		if has("choco") {
			names = append(names, Choco)
		}
	case "darwin":
		if has("brew") {
			names = append(names, Brew)
		}
	case "linux":
		if has("apt-get", "dpkg-query") {
			names = append(names, Apt)
		}
	}
	return names
}

// Multi is several package managers of one endpoint seen as one Backend;
// each update goes to the backend named by its Source.
type Multi struct {
	order    []string // backend names, in Detect's order
	bySource map[string]Backend
}

// Inventory concatenates the backends' inventories.
func (m *Multi) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	var all []*protocol.Update
	for _, n := range m.order {
		us, err := m.bySource[n].Inventory(ctx)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", n, err)
		}
		all = append(all, us...)
	}
	return all, nil
}

// checks are the backends' own checks of a job's updates, by the Source
// of the updates each backend installs.
var checks = map[string]func(*protocol.Update) error{
	apt.Source:    apt.Check,
	winget.Source: winget.Check,
	wua.Source:    wua.Check,
	choco.Source:  choco.Check,
	brew.Source:   brew.Check,
}

// Install hands each run of consecutive updates with the same Source to
// that backend, keeping the job's order across backends. A job holding an
// update its backend's check refuses runs nothing, in any backend, as when
// one backend has the whole job.
func (m *Multi) Install(ctx context.Context, updates []*protocol.Update) ([]Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if check := checks[u.Source]; check != nil && m.bySource[u.Source] != nil {
			return check(u)
		}
		return nil
	}); refused != nil {
		return refused, nil
	}
	results := make([]Result, 0, len(updates))
	for i := 0; i < len(updates); {
		j := i + 1
		for j < len(updates) && updates[j].Source == updates[i].Source {
			j++
		}
		b, ok := m.bySource[updates[i].Source]
		if !ok {
			for _, u := range updates[i:j] {
				results = append(results, Result{Update: u.ID, Error: fmt.Sprintf("update %q: no %q package manager on this endpoint", u.ID, u.Source)})
			}
			i = j
			continue
		}
		rs, err := b.Install(ctx, updates[i:j])
		results = append(results, rs...)
		if err != nil {
			return results, fmt.Errorf("backend %s: %w", updates[i].Source, err)
		}
		i = j
	}
	return results, nil
}

// Rollback hands each run of consecutive updates with the same Source to
// that backend's Rollback, keeping the job's order; an update whose
// backend cannot roll back fails with NotSupported.
func (m *Multi) Rollback(ctx context.Context, updates []*protocol.Update) ([]Result, error) {
	results := make([]Result, 0, len(updates))
	for i := 0; i < len(updates); {
		j := i + 1
		for j < len(updates) && updates[j].Source == updates[i].Source {
			j++
		}
		b, ok := m.bySource[updates[i].Source]
		rb, can := b.(Rollbacker)
		switch {
		case !ok:
			for _, u := range updates[i:j] {
				results = append(results, Result{Update: u.ID, Error: fmt.Sprintf("update %q: no %q package manager on this endpoint", u.ID, u.Source)})
			}
		case !can:
			for _, u := range updates[i:j] {
				results = append(results, Result{Update: u.ID, Error: NotSupported(u.Source)})
			}
		default:
			rs, err := rb.Rollback(ctx, updates[i:j])
			results = append(results, rs...)
			if err != nil {
				return results, fmt.Errorf("backend %s: %w", updates[i].Source, err)
			}
		}
		i = j
	}
	return results, nil
}

// NotSupported is the error of an update whose backend cannot roll back.
func NotSupported(backend string) string {
	return fmt.Sprintf("rollback is not supported by the %s backend", backend)
}

// RebootPending reports whether any backend says the OS waits for a
// reboot.
func (m *Multi) RebootPending(ctx context.Context) (bool, error) {
	for _, n := range m.order {
		p, err := m.bySource[n].RebootPending(ctx)
		if err != nil {
			return false, fmt.Errorf("backend %s: %w", n, err)
		}
		if p {
			return true, nil
		}
	}
	return false, nil
}
