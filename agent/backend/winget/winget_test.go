package winget

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/agent/backend/internal/winos"
	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

func cmdline(script string) string {
	name, args := winos.Command(script)
	return strings.Join(append([]string{name}, args...), " ")
}

func TestInventoryFromRecordedOutput(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: cmdline(InventoryScript), Stdout: "\ufeff" + runtest.File(t, "testdata", "inventory.json")}}}
	got, err := New(r).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	golden.CheckJSON(t, filepath.Join("testdata", "inventory.golden.json"), got)
}

func TestParseInventoryRejectsBrokenOutput(t *testing.T) {
	for name, in := range map[string]string{
		"module missing":             "Import-Module : The specified module 'Microsoft.WinGet.Client' was not loaded",
		"package without an id":      `[{"name":"x","installedVersion":"1"}]`,
		"package without a version":  `[{"id":"A.B","name":"x"}]`,
		"single object, not a array": `{"id":"A.B","installedVersion":"1"}`,
	} {
		if _, err := parseInventory([]byte(in)); err == nil {
			t.Errorf("%s: parseInventory succeeded, want an error", name)
		}
	}
}

func TestInstallFromRecordedExitCodes(t *testing.T) {
	upgrade := func(id, v string) string {
		return "winget upgrade --id " + id + " --version " + v + " --exact --silent --accept-package-agreements --accept-source-agreements --disable-interactivity"
	}
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: upgrade("Mozilla.Firefox", "139.0.1"), Stdout: "Found Mozilla Firefox (x64 en-US) [Mozilla.Firefox] Version 139.0.1\nSuccessfully verified installer hash\nStarting package install...\nSuccessfully installed\n"},
		{Cmd: upgrade("Notepad++.Notepad++", "8.8.1"), Exit: -1978334967, Stdout: "Starting package install...\nRestart your PC to finish installation.\n"},
		{Cmd: upgrade("7zip.7zip", "24.09"), Exit: 0x8A150101, Stdout: "Starting package install...\nApplication is currently running. Exit the application then try again.\n"},
		{Cmd: upgrade("Git.Git", "2.49.0"), Exit: 0x8A15002B, Stdout: "No available upgrade found.\nNo newer package versions are available from the configured sources.\n"},
	}}
	updates := []*protocol.Update{
		{ID: "Mozilla.Firefox@139.0.1", Source: Source, Name: "Mozilla.Firefox", Version: "139.0.1"},
		{ID: "Notepad++.Notepad++@8.8.1", Source: Source, Name: "Notepad++.Notepad++", Version: "8.8.1"},
		{ID: "7zip.7zip@24.09", Source: Source, Name: "7zip.7zip", Version: "24.09"},
		{ID: "Git.Git@2.49.0", Source: Source, Name: "Git.Git", Version: "2.49.0"},
		{ID: "x@1", Source: Source, Name: "--override", Version: "1"},
		{ID: "curl@8", Source: "choco", Name: "curl", Version: "8"},
	}
	got, err := New(r).Install(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	gotShort := runtest.Outcomes(got)
	want := []runtest.Outcome{
		{"Mozilla.Firefox@139.0.1", true, ""},
		{"Notepad++.Notepad++@8.8.1", true, ""},
		{"7zip.7zip@24.09", false, "winget upgrade 7zip.7zip 24.09: exit code 0x8A150101"},
		{"Git.Git@2.49.0", true, ""},
		{"x@1", false, `update "x@1": "--override" is not a winget package id`},
		{"curl@8", false, `update "curl@8" is from "choco", not winget`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[2].Output, "Application is currently running") {
		t.Errorf("7zip output lost winget's message: %q", got[2].Output)
	}
}
