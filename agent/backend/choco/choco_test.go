package choco

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

func TestInventoryFromRecordedOutputs(t *testing.T) {
	tests := []struct {
		name         string
		outdated     string
		outdatedExit int
		golden       string
	}{
		{"workstation with outdated and pinned packages (enhanced exit code 2)", runtest.File(t, "testdata", "outdated.txt"), 2, "inventory.golden.json"},
		{"everything current", "", 0, "inventory-current.golden.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtest.Replay{T: t, Calls: []runtest.Call{
				{Cmd: "choco list -r", Stdout: runtest.File(t, "testdata", "list.txt")},
				{Cmd: "choco outdated -r --ignore-unfound", Stdout: tc.outdated, Exit: tc.outdatedExit},
			}}
			got, err := New(r).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			golden.CheckJSON(t, filepath.Join("testdata", tc.golden), got)
		})
	}
}

func TestInventoryFailsWhenChocoFails(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "choco list -r", Exit: 1, Stderr: "Access to the path 'C:\\ProgramData\\chocolatey\\lib' is denied."},
	}}
	if _, err := New(r).Inventory(context.Background()); err == nil || !strings.Contains(err.Error(), "is denied") {
		t.Errorf("Inventory error = %v, want Chocolatey's message", err)
	}
}

func TestParseRecords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		n       int
		want    [][]string
		wantErr bool
	}{
		{name: "notice lines are skipped", in: "Chocolatey v2.4.3\r\ngit|2.45.2|2.49.0|false\r\n", n: 4, want: [][]string{{"git", "2.45.2", "2.49.0", "false"}}},
		{name: "nothing outdated", in: "", n: 4},
		{name: "a record with a missing field", in: "git|2.45.2|false\n", n: 4, wantErr: true},
		{name: "a record with an empty version", in: "git||2.49.0|false\n", n: 4, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRecords([]byte(tc.in), tc.n)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("records (-want +got):\n%s", d)
			}
		})
	}
}

func TestInstallFromRecordedExitCodes(t *testing.T) {
	upgrade := func(name, v string) string {
		return "choco upgrade --version=" + v + " -y -r --no-progress -- " + name
	}
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: upgrade("git", "2.49.0"), Stdout: "Upgrading the following packages:\ngit\ngit.install v2.49.0\ngit v2.49.0\n"},
		{Cmd: upgrade("googlechrome", "137.0.7151.69"), Exit: 3010, Stdout: "googlechrome v137.0.7151.69\n"},
		{Cmd: upgrade("vlc", "3.0.99"), Exit: 1, Stdout: "vlc not upgraded. An error occurred during installation:\n Unable to resolve dependency 'vlc.install (= 3.0.99)'.\n"},
	}}
	updates := []*protocol.Update{
		{ID: "git@2.49.0", Source: Source, Name: "git", Version: "2.49.0"},
		{ID: "googlechrome@137.0.7151.69", Source: Source, Name: "googlechrome", Version: "137.0.7151.69"},
		{ID: "vlc@3.0.99", Source: Source, Name: "vlc", Version: "3.0.99"},
		{ID: "KB5058411", Source: "windows-update", Name: "KB5058411"},
	}
	got, err := New(r).Install(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	gotShort := runtest.Outcomes(got)
	want := []runtest.Outcome{
		{"git@2.49.0", true, ""},
		{"googlechrome@137.0.7151.69", true, ""},
		{"vlc@3.0.99", false, "choco upgrade vlc 3.0.99: exit status 1"},
		{"KB5058411", false, `update "KB5058411" is from "windows-update", not choco`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[2].Output, "Unable to resolve dependency") {
		t.Errorf("vlc output lost Chocolatey's error: %q", got[2].Output)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		version string
		want    string // the error; empty when accepted
	}{
		{"a package", "git", "2.49.0", ""},
		{"an .install package and a SemVer 2 version", "git.install", "2.49.0-rc1.1+build.5", ""},
		{"an extension with a four-part version", "chocolatey-core.extension", "1.4.0.20240101", ""},
		{"an option for an id", "--force", "1",
			`update "u": name "--force" is not a Chocolatey package id: it must start with a letter or digit`},
		{"a Windows-style option", "/y", "1",
			`update "u": name "/y" is not a Chocolatey package id: it must start with a letter or digit`},
		{"a second package after a space", "git vlc", "1",
			`update "u": name "git vlc" is not a Chocolatey package id: it contains ' '; it may hold only letters, digits and . _ -`},
		{"a second package after ;", "git;vlc", "1",
			`update "u": name "git;vlc" is not a Chocolatey package id: it contains ';'; it may hold only letters, digits and . _ -`},
		{"every package", "ALL", "1",
			`update "u": name "ALL" is not a Chocolatey package id: "choco upgrade all" upgrades every package`},
		{"a packages.config file", "packages.Config", "1",
			`update "u": name "packages.Config" is not a Chocolatey package id: a name ending in ".config" is a packages.config file to Chocolatey`},
		{"a path", `C:\pkgs\evil.nupkg`, "1",
			`update "u": name "C:\\pkgs\\evil.nupkg" is not a Chocolatey package id: it contains ':'; it may hold only letters, digits and . _ -`},
		{"too long", strings.Repeat("a", 101), "1",
			`update "u": name "` + strings.Repeat("a", 101) + `" is not a Chocolatey package id: it is 101 bytes long, more than 100`},
		{"an option after a space in the version", "git", "2.49.0 --force",
			`update "u": version "2.49.0 --force" is not a Chocolatey version: it contains ' '; it may hold only letters, digits and . + -`},
		{"a quote in the version", "git", `2.49.0"`,
			`update "u": version "2.49.0\"" is not a Chocolatey version: it contains '"'; it may hold only letters, digits and . + -`},
		{"a version that is not a number", "git", "latest",
			`update "u": version "latest" is not a Chocolatey version: it must start with a digit`},
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
	git := &protocol.Update{ID: "git@2.49.0", Source: Source, Name: "git", Version: "2.49.0"}
	for _, refused := range []*protocol.Update{
		{ID: "x@1", Source: Source, Name: "-force", Version: "1"},
		{ID: "git@2.49.0 --force", Source: Source, Name: "git", Version: "2.49.0 --force"},
		{ID: "all@1", Source: Source, Name: "all", Version: "1"},
	} {
		t.Run(refused.ID, func(t *testing.T) {
			r := &runtest.Replay{T: t}
			got, err := New(r).Install(context.Background(), []*protocol.Update{git, refused})
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

// FuzzChocoArgs checks that an update Check accepts makes a command line
// whose only value after "--" is the package id, and whose version is one
// option's value.
func FuzzChocoArgs(f *testing.F) {
	// Seeds: the recorded packages (name|version) and upgrades
	// (name|current|available|pinned).
	for _, rec := range []struct {
		file            string
		fields, version int
	}{{"list.txt", 2, 1}, {"outdated.txt", 4, 2}} {
		b, err := os.ReadFile(filepath.Join("testdata", rec.file))
		if err != nil {
			f.Fatal(err)
		}
		recs, err := parseRecords(b, rec.fields)
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range recs {
			f.Add(r[0], r[rec.version])
		}
	}
	f.Add("-force", "1")
	f.Add("git", "2.49.0 --force")
	f.Add("all", "1")
	f.Fuzz(func(t *testing.T, id, version string) {
		if Check(&protocol.Update{ID: "fuzz", Source: Source, Name: id, Version: version}) != nil {
			return
		}
		for _, s := range []string{id, version} {
			if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "/") || strings.IndexFunc(s, func(r rune) bool {
				return unicode.IsSpace(r) || !unicode.IsPrint(r) || r > unicode.MaxASCII || strings.ContainsRune(`"'\\;&|<>$*?:=`+"`", r)
			}) >= 0 {
				t.Errorf("accepted %q: an option, whitespace or a shell, quote or separator character", s)
			}
		}
		if strings.EqualFold(id, "all") || len(id) > maxIDLength {
			t.Errorf("accepted id %q", id)
		}
		args := upgradeArgs(id, version)
		if args[len(args)-2] != "--" || args[len(args)-1] != id || !slices.Contains(args, "--version="+version) {
			t.Errorf("upgradeArgs(%q, %q) = %q", id, version, args)
		}
	})
}

func FuzzParseRecords(f *testing.F) {
	for _, name := range []string{"list.txt", "outdated.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 4)
		f.Add(b, 2)
	}
	f.Add([]byte("|||\n|\n"), 4)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 1 || n > 8 {
			return
		}
		recs, err := parseRecords(b, n)
		if err != nil {
			return
		}
		for _, r := range recs {
			if len(r) != n || r[0] == "" || r[1] == "" {
				t.Errorf("bad record %q", r)
			}
		}
	})
}
