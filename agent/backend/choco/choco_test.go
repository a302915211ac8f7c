package choco

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
		return "choco upgrade " + name + " --version=" + v + " -y -r --no-progress"
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
		{ID: "git@2.49.0 --force", Source: Source, Name: "git", Version: "2.49.0 --force"},
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
		{"git@2.49.0 --force", false, `update "git@2.49.0 --force": "2.49.0 --force" is not a Chocolatey version`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[2].Output, "Unable to resolve dependency") {
		t.Errorf("vlc output lost Chocolatey's error: %q", got[2].Output)
	}
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
