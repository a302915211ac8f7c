package backend

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/agent/backend/winget"
	"github.com/patchline/patchline/protocol"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		goos  string
		tools []string
		want  []string
	}{
		{"Windows server without app managers", "windows", nil, []string{"windows-update"}},
		{"Windows workstation with winget and Chocolatey", "windows", []string{"winget", "choco"}, []string{"windows-update", "winget", "choco"}},
		{"Mac with Homebrew", "darwin", []string{"brew"}, []string{"brew"}},
		{"Mac without Homebrew", "darwin", nil, nil},
		{"Debian server", "linux", []string{"apt-get", "dpkg-query"}, []string{"apt"}},
		{"RHEL server (no apt)", "linux", []string{"dnf"}, nil},
		{"FreeBSD", "freebsd", []string{"pkg"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookPath := func(tool string) (string, error) {
				for _, have := range tc.tools {
					if have == tool {
						return "/usr/bin/" + tool, nil
					}
				}
				return "", errors.New("not found")
			}
			if d := cmp.Diff(tc.want, Detect(tc.goos, lookPath)); d != "" {
				t.Errorf("Detect (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewByName(t *testing.T) {
	for _, name := range []string{Apt, Winget, WindowsUpdate, Choco, Brew} {
		if b, err := New(name, Options{}); err != nil || b == nil {
			t.Errorf("New(%q) = %v, %v", name, b, err)
		}
	}
	if _, err := New(Sim, Options{Sim: sim.Options{Family: "linux"}}); err != nil {
		t.Errorf("New(sim) = %v", err)
	}
	if _, err := New(Sim, Options{}); err == nil {
		t.Error("New(sim) without a family succeeded, want an error")
	}
	if _, err := New("yum", Options{}); err == nil {
		t.Error(`New("yum") succeeded, want an error`)
	}
}

func newSim(t *testing.T, family string) *sim.Backend {
	t.Helper()
	b, err := sim.New(sim.Options{Seed: 5, Family: family, Now: func() time.Time { return time.Date(2026, 6, 9, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMultiRoutesBySourceInJobOrder(t *testing.T) {
	win, deb := newSim(t, "windows"), newSim(t, "linux")
	m := &Multi{order: []string{WindowsUpdate, Apt}, bySource: map[string]Backend{WindowsUpdate: win, Apt: deb}}
	ctx := context.Background()
	all, err := m.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kb, pkg *protocol.Update
	for _, u := range all {
		if u.Installed || len(u.Requires) > 0 {
			continue
		}
		if u.Source == "windows-update" && kb == nil {
			kb = u
		}
		if u.Source == "apt" && pkg == nil {
			pkg = u
		}
	}
	if kb == nil || pkg == nil {
		t.Fatalf("combined inventory lacks a Windows or apt update: %d updates", len(all))
	}
	brewUpdate := &protocol.Update{ID: "git@2.49.0", Source: "brew", Name: "git", Version: "2.49.0"}
	res, err := m.Install(ctx, []*protocol.Update{pkg, kb, brewUpdate})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.Update)
	}
	if d := cmp.Diff([]string{pkg.ID, kb.ID, brewUpdate.ID}, got); d != "" {
		t.Errorf("result order (-want +got):\n%s", d)
	}
	if !res[0].Succeeded || !res[1].Succeeded || res[2].Succeeded {
		t.Errorf("results = %+v; want apt and Windows done, brew refused", res)
	}
	if win.Installs(kb.ID) != 1 || deb.Installs(pkg.ID) != 1 || win.Installs(pkg.ID) != 0 {
		t.Error("an update reached the wrong backend")
	}
}

func TestMultiRefusesTheWholeJob(t *testing.T) {
	win, deb := newSim(t, "windows"), newSim(t, "linux")
	m := &Multi{order: []string{WindowsUpdate, Apt}, bySource: map[string]Backend{WindowsUpdate: win, Apt: deb}}
	ctx := context.Background()
	all, err := m.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pkg, kb *protocol.Update
	for _, u := range all {
		if !u.Installed && u.Source == "apt" && pkg == nil {
			pkg = u
		}
		if !u.Installed && u.Source == "windows-update" && kb == nil {
			kb = u
		}
	}
	if pkg == nil || kb == nil {
		t.Fatalf("combined inventory lacks a Windows or apt update: %d updates", len(all))
	}
	tests := []struct {
		name    string
		refused *protocol.Update
	}{
		{"a Debian version apt-get reads as a removal", &protocol.Update{ID: "hello@1.0-1-", Source: "apt", Name: "hello", Version: "1.0-1-"}},
		{"PowerShell in a KB number", &protocol.Update{ID: "KB1'; x", Source: "windows-update", Name: "KB1'; x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := m.Install(ctx, []*protocol.Update{pkg, kb, tc.refused})
			if err != nil {
				t.Fatal(err)
			}
			notRun := fmt.Sprintf("not run: update %q of this job was refused", tc.refused.ID)
			want := []Result{
				{Update: pkg.ID, Error: notRun},
				{Update: kb.ID, Error: notRun},
				{Update: tc.refused.ID, Error: checks[tc.refused.Source](tc.refused).Error()},
			}
			if d := cmp.Diff(want, res); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if win.Installs(kb.ID) != 0 || deb.Installs(pkg.ID) != 0 {
				t.Error("an update of a refused job was installed")
			}
		})
	}
}

func TestMultiRollback(t *testing.T) {
	win := newSim(t, "windows")
	m := &Multi{order: []string{WindowsUpdate, Winget}, bySource: map[string]Backend{WindowsUpdate: win, Winget: winget.New(nil)}}
	ctx := context.Background()
	inv, err := win.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kb *protocol.Update
	for _, u := range inv {
		if u.Installed {
			kb = u
			break
		}
	}
	app := &protocol.Update{ID: "Mozilla.Firefox@128.0", Source: "winget", Name: "Mozilla.Firefox", Version: "128.0"}
	brewUpdate := &protocol.Update{ID: "git@2.49.0", Source: "brew", Name: "git", Version: "2.49.0"}
	res, err := m.Rollback(ctx, []*protocol.Update{kb, app, brewUpdate})
	if err != nil {
		t.Fatal(err)
	}
	want := []runtest.Outcome{
		{Update: kb.ID, Succeeded: true},
		{Update: app.ID, Error: "rollback is not supported by the winget backend"},
		{Update: brewUpdate.ID, Error: `update "git@2.49.0": no "brew" package manager on this endpoint`},
	}
	if d := cmp.Diff(want, runtest.Outcomes(res)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
