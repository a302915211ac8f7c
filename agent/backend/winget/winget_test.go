package winget

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

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
		{"curl@8", false, `update "curl@8" is from "choco", not winget`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[2].Output, "Application is currently running") {
		t.Errorf("7zip output lost winget's message: %q", got[2].Output)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		version string
		want    string // the error; empty when accepted
	}{
		{"Publisher.Package", "Mozilla.Firefox", "139.0.1", ""},
		{"plus signs and three segments", "Microsoft.VCRedist.2015+.x64", "14.44.35208.0", ""},
		{"a Store product id", "9NBLGGH4NNS1", "1.0.0-beta_2", ""},
		{"an option for an id", "--override", "1",
			`update "u": name "--override" is not a winget package identifier: it must start with a letter or digit`},
		{"a short option for an id", "-h", "1",
			`update "u": name "-h" is not a winget package identifier: it must start with a letter or digit`},
		{"an option after a space", "Git.Git --force", "2.49.0",
			`update "u": name "Git.Git --force" is not a winget package identifier: it contains ' '; it may hold only letters, digits and . _ + -`},
		{"an option for a version", "Git.Git", "--force",
			`update "u": version "--force" is not a winget version: it must start with a letter or digit`},
		{"a space in the version", "Git.Git", "2.49.0 --override x",
			`update "u": version "2.49.0 --override x" is not a winget version: it contains ' '; it may hold only letters, digits and . _ + -`},
		{"a quote in the version", "Git.Git", `2.49"`,
			`update "u": version "2.49\"" is not a winget version: it contains '"'; it may hold only letters, digits and . _ + -`},
		{"an empty segment", "Git..Git", "1",
			`update "u": name "Git..Git" is not a winget package identifier: it has an empty segment; an identifier is Publisher.Package, segments joined by single dots`},
		{"a trailing dot", "Git.", "1",
			`update "u": name "Git." is not a winget package identifier: it has an empty segment; an identifier is Publisher.Package, segments joined by single dots`},
		{"a path", `ARP\Machine\X64\Git_is1`, "1",
			`update "u": name "ARP\\Machine\\X64\\Git_is1" is not a winget package identifier: it contains '\\'; it may hold only letters, digits and . _ + -`},
		{"too long", "A." + strings.Repeat("b", 127), "1",
			`update "u": name "A.` + strings.Repeat("b", 127) + `" is not a winget package identifier: it is 129 bytes long, more than 128`},
		{"no version", "Git.Git", "",
			`update "u": version "" is not a winget version: it is empty`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := Check(&protocol.Update{ID: "u", Source: Source, Name: tc.id, Version: tc.version}); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Check(%q, %q) = %q, want %q", tc.id, tc.version, got, tc.want)
			}
		})
	}
}

func TestInstallRefusesJobBeforeAnyCommand(t *testing.T) {
	firefox := &protocol.Update{ID: "Mozilla.Firefox@139.0.1", Source: Source, Name: "Mozilla.Firefox", Version: "139.0.1"}
	for _, refused := range []*protocol.Update{
		{ID: "x@1", Source: Source, Name: "--override", Version: "1"},
		{ID: "git@2.49.0 --force", Source: Source, Name: "Git.Git", Version: "2.49.0 --force"},
	} {
		t.Run(refused.ID, func(t *testing.T) {
			r := &runtest.Replay{T: t}
			got, err := New(r).Install(context.Background(), []*protocol.Update{firefox, refused})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].Error != fmt.Sprintf("not run: update %q of this job was refused", refused.ID) || got[1].Error != Check(refused).Error() {
				t.Errorf("results = %+v, want the job refused", got)
			}
			if ran := r.Ran(); len(ran) != 0 {
				t.Errorf("ran %q for a refused job, want nothing", ran)
			}
		})
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

// FuzzWingetArgs checks that an update Check accepts makes a command line
// where the identifier and the version are each one value of their option.
func FuzzWingetArgs(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "inventory.json"))
	if err != nil {
		f.Fatal(err)
	}
	ups, err := parseInventory(b)
	if err != nil {
		f.Fatal(err)
	}
	for _, u := range ups {
		f.Add(u.Name, u.Version)
	}
	f.Add("--override", "1")
	f.Add("Git.Git", "2.49.0 --force")
	f.Fuzz(func(t *testing.T, id, version string) {
		if Check(&protocol.Update{ID: "fuzz", Source: Source, Name: id, Version: version}) != nil {
			return
		}
		for _, s := range []string{id, version} {
			if s == "" || len(s) > maxLength || strings.HasPrefix(s, "-") || strings.IndexFunc(s, func(r rune) bool {
				return unicode.IsSpace(r) || !unicode.IsPrint(r) || r > unicode.MaxASCII || strings.ContainsRune(`"'\/;&|<>$*?`+"`", r)
			}) >= 0 {
				t.Errorf("accepted %q: empty, too long, an option, whitespace or a shell or quote character", s)
			}
		}
		r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: "winget upgrade --id " + id + " --version " + version + " --exact --silent --accept-package-agreements --accept-source-agreements --disable-interactivity"}}}
		res, err := New(r).Install(context.Background(), []*protocol.Update{{ID: "fuzz", Source: Source, Name: id, Version: version}})
		if err != nil || len(res) != 1 || !res[0].Succeeded {
			t.Errorf("Install = %+v, %v; want the recorded upgrade", res, err)
		}
	})
}
