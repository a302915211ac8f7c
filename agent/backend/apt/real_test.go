package apt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

const demoPkg = "patchline-demo-hello"

// TestRealAptUpgradesInIsolatedRoot builds two versions of a throwaway
// package, serves the newer one from a local file repository, installs the
// older one into an isolated dpkg root, and drives the real apt backend
// against that root: it must see the upgrade, install it, and then report
// it installed, without touching the host's packages.
func TestRealAptUpgradesInIsolatedRoot(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, demoPkg) {
		t.Fatalf("host already has %s installed; remove it first", demoPkg)
	}
	root := apttest.Root(t, demoPkg)

	ctx := context.Background()
	b := New(run.Exec{}, Options{Root: root})

	before, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []*protocol.Update{
		{ID: demoPkg + "@1.0-1", Source: "apt", Name: demoPkg, Version: "1.0-1", InstalledVersion: "1.0-1", Installed: true},
		{ID: demoPkg + "@1.1-1", Source: "apt", Name: demoPkg, Version: "1.1-1", InstalledVersion: "1.0-1", Category: "security"},
	}
	if d := cmp.Diff(want, before); d != "" {
		t.Fatalf("inventory before install (-want +got):\n%s", d)
	}

	results, err := b.Install(ctx, []*protocol.Update{before[1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].Succeeded {
		t.Fatalf("install results = %+v, want one success", results)
	}
	if !strings.Contains(results[0].Output, "Setting up "+demoPkg+" (1.1-1)") {
		t.Errorf("install output lacks dpkg's log:\n%s", results[0].Output)
	}
	if got, err := os.ReadFile(filepath.Join(root, "opt", demoPkg, "hello.txt")); err != nil || string(got) != "hello from 1.1-1\n" {
		t.Errorf("file in root after upgrade = %q, %v; want the 1.1-1 content", got, err)
	}

	after, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []*protocol.Update{
		{ID: demoPkg + "@1.1-1", Source: "apt", Name: demoPkg, Version: "1.1-1", InstalledVersion: "1.1-1", Installed: true},
	}
	if d := cmp.Diff(want, after); d != "" {
		t.Errorf("inventory after install (-want +got):\n%s", d)
	}

	if pending, err := b.RebootPending(ctx); err != nil || pending {
		t.Errorf("RebootPending = %v, %v; want false", pending, err)
	}
	if apttest.HostHas(t, demoPkg) {
		t.Errorf("the host's dpkg database now has %s: the backend escaped its root", demoPkg)
	}
	if _, err := os.Stat(filepath.Join("/opt", demoPkg)); err == nil {
		t.Errorf("/opt/%s exists on the host: the backend escaped its root", demoPkg)
	}
}
