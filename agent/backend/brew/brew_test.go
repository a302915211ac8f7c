package brew

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

func TestInventoryFromRecordedOutputs(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "brew update --quiet"},
		{Cmd: "brew info --json=v2 --installed", Stdout: runtest.File(t, "testdata", "info-installed.json")},
		{Cmd: "brew outdated --json=v2", Stdout: runtest.File(t, "testdata", "outdated.json")},
	}}
	got, err := New(r).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	golden.CheckJSON(t, filepath.Join("testdata", "inventory.golden.json"), got)
	for _, env := range r.Env()[1:] {
		if !cmp.Equal(env, []string{"HOMEBREW_NO_AUTO_UPDATE=1"}) {
			t.Errorf("brew ran with env %q, want auto-update off", env)
		}
	}
}

func TestInventoryRejectsBrokenOutput(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "brew update --quiet"},
		{Cmd: "brew info --json=v2 --installed", Stdout: "Error: Invalid usage: --json=v2 is not a valid option"},
	}}
	if _, err := New(r).Inventory(context.Background()); err == nil {
		t.Error("Inventory succeeded on non-JSON output, want an error")
	}
}

func TestInstallFromRecordedOutputs(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "brew outdated --json=v2", Stdout: runtest.File(t, "testdata", "outdated.json")},
		{Cmd: "brew upgrade --formula git", Stdout: "==> Upgrading git\n  2.45.2 -> 2.49.0\n==> Pouring git--2.49.0.arm64_sequoia.bottle.tar.gz\n"},
		{Cmd: "brew upgrade --cask firefox", Exit: 1, Stderr: "Error: It seems there is already an App at '/Applications/Firefox.app'.\n"},
		{Cmd: "brew info --json=v2 jq", Stdout: runtest.File(t, "testdata", "info-installed.json")},
		{Cmd: "brew info --json=v2 wget", Exit: 1, Stderr: "Error: No available formula with the name \"wget\".\n"},
	}}
	updates := []*protocol.Update{
		{ID: "git@2.49.0", Source: Source, Name: "git", Version: "2.49.0"},
		{ID: "firefox@139.0.1", Source: Source, Name: "firefox", Version: "139.0.1"},
		{ID: "openssl@3@3.4.1", Source: Source, Name: "openssl@3", Version: "3.4.1"},
		{ID: "jq@1.7.1", Source: Source, Name: "jq", Version: "1.7.1"},
		{ID: "wget@1.25.0", Source: Source, Name: "wget", Version: "1.25.0"},
		{ID: "evil@1", Source: Source, Name: "--force", Version: "1"},
	}
	got, err := New(r).Install(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	gotShort := runtest.Outcomes(got)
	want := []runtest.Outcome{
		{"git@2.49.0", true, ""},
		{"firefox@139.0.1", false, "brew upgrade --cask firefox: exit status 1"},
		{"openssl@3@3.4.1", false, "Homebrew would install openssl@3 3.5.0, not 3.4.1"},
		{"jq@1.7.1", true, ""},
		{"wget@1.25.0", false, "wget is not outdated and brew info failed: exit status 1: Error: No available formula with the name \"wget\"."},
		{"evil@1", false, `update "evil@1": "--force" is not a Homebrew formula or cask name`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[1].Output, "already an App") {
		t.Errorf("firefox output lost brew's error: %q", got[1].Output)
	}
}

func FuzzParseBrewInventory(f *testing.F) {
	info, err := os.ReadFile(filepath.Join("testdata", "info-installed.json"))
	if err != nil {
		f.Fatal(err)
	}
	outdated, err := os.ReadFile(filepath.Join("testdata", "outdated.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(info, outdated)
	f.Add([]byte(`{"formulae":[{"name":"a","installed":[]}],"casks":[{"token":"b"}]}`), []byte(`{"formulae":[{"name":"a","pinned":true}],"casks":null}`))
	f.Add([]byte(`{"formulae":[{"name":"a","installed":[{"version":""}]}]}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, infoOut, outdatedOut []byte) {
		inst, err := parseInfo(infoOut)
		if err != nil {
			return
		}
		od, err := parseOutdated(outdatedOut)
		if err != nil {
			return
		}
		for _, u := range inventory(inst, od) {
			if u.Name == "" || u.Version == "" || u.ID != u.Name+"@"+u.Version || u.Source != Source {
				t.Errorf("an update without its id, name or version: %+v", u)
			}
			if u.Installed && u.InstalledVersion != u.Version || !u.Installed && u.Category != "bugfix" {
				t.Errorf("an update with mixed-up versions or category: %+v", u)
			}
		}
	})
}
