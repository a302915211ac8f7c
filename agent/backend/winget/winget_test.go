package winget

import (
	"context"
	"os"
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

func TestParseInventorySkipsUpgradesWithoutAVersion(t *testing.T) {
	for _, v := range []string{"Unknown", ""} {
		got, err := parseInventory([]byte(`[{"id":"A.B","installedVersion":"1.0","source":"msstore","isUpdateAvailable":true,"availableVersions":["` + v + `"]}]`))
		if err != nil {
			t.Fatal(err)
		}
		want := []*protocol.Update{{ID: "A.B@1.0", Source: Source, Name: "A.B", Version: "1.0", InstalledVersion: "1.0", Installed: true}}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("available version %q: updates (-want +got):\n%s", v, d)
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

func FuzzParseWingetInventory(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "inventory.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`[{"id":"A.B","installedVersion":"1","isUpdateAvailable":true,"source":"winget","availableVersions":["Unknown"]}]`))
	f.Add([]byte(`[{},null,{"id":"x"}]`))
	f.Add([]byte(`[{"id":"0","installedVersion":"0","source":"0","isUpdateAvailable":true,"availableVersions":[""]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ups, err := parseInventory(b)
		if err != nil {
			return
		}
		for _, u := range ups {
			if u.Name == "" || u.Version == "" || u.InstalledVersion == "" || u.ID != u.Name+"@"+u.Version || u.Source != Source {
				t.Errorf("parsed an update without its id, name or versions: %+v", u)
			}
			if !u.Installed && (u.Category != "bugfix" || u.Version == "Unknown") {
				t.Errorf("parsed an upgrade winget cannot install exactly: %+v", u)
			}
		}
	})
}
