package brew

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

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
		{Cmd: "brew upgrade --formula -- git", Stdout: "==> Upgrading git\n  2.45.2 -> 2.49.0\n==> Pouring git--2.49.0.arm64_sequoia.bottle.tar.gz\n"},
		{Cmd: "brew upgrade --cask -- firefox", Exit: 1, Stderr: "Error: It seems there is already an App at '/Applications/Firefox.app'.\n"},
		{Cmd: "brew info --json=v2 --installed", Stdout: runtest.File(t, "testdata", "info-installed.json")},
	}}
	updates := []*protocol.Update{
		{ID: "git@2.49.0", Source: Source, Name: "git", Version: "2.49.0"},
		{ID: "firefox@139.0.1", Source: Source, Name: "firefox", Version: "139.0.1"},
		{ID: "openssl@3@3.4.1", Source: Source, Name: "openssl@3", Version: "3.4.1"},
		{ID: "jq@1.7.1", Source: Source, Name: "jq", Version: "1.7.1"},
		{ID: "wget@1.25.0", Source: Source, Name: "wget", Version: "1.25.0"},
		{ID: "KB5058411", Source: "windows-update", Name: "KB5058411"},
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
		{"wget@1.25.0", false, "wget 1.25.0 is neither installed nor offered by Homebrew"},
		{"KB5058411", false, `update "KB5058411" is from "windows-update", not brew`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[1].Output, "already an App") {
		t.Errorf("firefox output lost brew's error: %q", got[1].Output)
	}
}

func TestInstallWhenBrewInfoFails(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "brew outdated --json=v2", Stdout: runtest.File(t, "testdata", "outdated.json")},
		{Cmd: "brew info --json=v2 --installed", Exit: 1, Stderr: "Error: Cannot read the Cellar.\n"},
	}}
	got, err := New(r).Install(context.Background(), []*protocol.Update{{ID: "jq@1.7.1", Source: Source, Name: "jq", Version: "1.7.1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []runtest.Outcome{{"jq@1.7.1", false, "jq is not outdated and brew info failed: exit status 1: Error: Cannot read the Cellar."}}
	if d := cmp.Diff(want, runtest.Outcomes(got)); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		formula string
		version string
		want    string // the error; empty when accepted
	}{
		{"a formula", "git", "2.49.0", ""},
		{"a versioned formula with a revision", "openssl@3", "3.5.0_1", ""},
		{"a formula with + in its name", "libxml++3", "3.2.5", ""},
		{"a cask with a build number", "visual-studio-code", "1.100.2,abcdef", ""},
		{"a formula from a tap", "hashicorp/tap/terraform", "1.12.1", ""},
		{"a HEAD version", "neovim", "HEAD-1a2b3c4", ""},
		{"an option for a name", "--force", "1",
			`update "u": name "--force" is not a Homebrew formula or cask name: it must start with a lowercase letter or digit`},
		{"a second argument after a space", "git --cask firefox", "1",
			`update "u": name "git --cask firefox" is not a Homebrew formula or cask name: it contains ' '; it may hold only lowercase letters, digits and @ + . _ -`},
		{"an uppercase name", "Git", "1",
			`update "u": name "Git" is not a Homebrew formula or cask name: it must start with a lowercase letter or digit`},
		{"a path", "../evil.rb", "1",
			`update "u": name "../evil.rb" is not a Homebrew formula or cask name: it has a "/" but is not user/repo/name`},
		{"an absolute path in tap form", "/tmp/evil", "1",
			`update "u": name "/tmp/evil" is not a Homebrew formula or cask name: its tap "/tmp": it is empty`},
		{"an option in the tap", "-x/tap/git", "1",
			`update "u": name "-x/tap/git" is not a Homebrew formula or cask name: its tap "-x/tap": it must start with a letter or digit`},
		{"a bad name in a tap", "user/tap/Git", "1",
			`update "u": name "user/tap/Git" is not a Homebrew formula or cask name: its name in the tap "Git": it must start with a lowercase letter or digit`},
		{"a URL", "https://example.com/evil.rb", "1",
			`update "u": name "https://example.com/evil.rb" is not a Homebrew formula or cask name: it has a "/" but is not user/repo/name`},
		{"a space in the version", "git", "2.49.0 --force",
			`update "u": version "2.49.0 --force" is not a Homebrew version: it contains ' '; it may hold only letters, digits and . _ + , : -`},
		{"a quote in the version", "git", "2.49.0'",
			`update "u": version "2.49.0'" is not a Homebrew version: it contains '\''; it may hold only letters, digits and . _ + , : -`},
		{"too long", strings.Repeat("a", 129), "1",
			`update "u": name "` + strings.Repeat("a", 129) + `" is not a Homebrew formula or cask name: it is 129 bytes long, more than 128`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := Check(&protocol.Update{ID: "u", Source: Source, Name: tc.formula, Version: tc.version}); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Check(%q, %q) = %q, want %q", tc.formula, tc.version, got, tc.want)
			}
		})
	}
}

func TestInstallRefusesJobBeforeAnyCommand(t *testing.T) {
	git := &protocol.Update{ID: "git@2.49.0", Source: Source, Name: "git", Version: "2.49.0"}
	for _, refused := range []*protocol.Update{
		{ID: "evil@1", Source: Source, Name: "--force", Version: "1"},
		{ID: "git@2.49.0 x", Source: Source, Name: "git", Version: "2.49.0 x"},
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
				t.Errorf("ran %q for a refused job, want nothing (not even brew outdated)", ran)
			}
		})
	}
}

// FuzzBrewArgs checks that what Check accepts is one name and one version
// that brew cannot read as an option, a second argument or a path.
func FuzzBrewArgs(f *testing.F) {
	info, err := os.ReadFile(filepath.Join("testdata", "info-installed.json"))
	if err != nil {
		f.Fatal(err)
	}
	outdated, err := os.ReadFile(filepath.Join("testdata", "outdated.json"))
	if err != nil {
		f.Fatal(err)
	}
	inst, err := parseInfo(info)
	if err != nil {
		f.Fatal(err)
	}
	od, err := parseOutdated(outdated)
	if err != nil {
		f.Fatal(err)
	}
	for _, u := range inventory(inst, od) {
		f.Add(u.Name, u.Version)
	}
	f.Add("hashicorp/tap/terraform", "1.12.1")
	f.Add("--force", "1")
	f.Add("../evil.rb", "1 2")
	f.Fuzz(func(t *testing.T, name, version string) {
		if Check(&protocol.Update{ID: "fuzz", Source: Source, Name: name, Version: version}) != nil {
			return
		}
		for _, s := range append(strings.Split(name, "/"), version) {
			if s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, ".") || strings.IndexFunc(s, func(r rune) bool {
				return unicode.IsSpace(r) || !unicode.IsPrint(r) || r > unicode.MaxASCII || strings.ContainsRune(`"'\\;&|<>$*?=`+"`", r)
			}) >= 0 {
				t.Errorf("accepted %q (in %q, %q): empty, an option, a path, whitespace or a shell or quote character", s, name, version)
			}
		}
		if n := strings.Count(name, "/"); n != 0 && n != 2 {
			t.Errorf("accepted %q: neither a name nor user/repo/name", name)
		}
	})
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
