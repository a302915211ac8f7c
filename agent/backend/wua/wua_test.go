package wua

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	tests := []struct{ name, recorded, golden string }{
		{"Windows 11 24H2 with cumulative, .NET, Defender, MSRT and enablement updates", "inventory-win11.json", "inventory-win11.golden.json"},
		{"nothing offered", "empty.json", "empty.golden.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: cmdline(InventoryScript), Stdout: runtest.File(t, "testdata", tc.recorded)}}}
			got, err := New(r).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			golden.CheckJSON(t, filepath.Join("testdata", tc.golden), got)
		})
	}
}

func TestParseInventoryRejectsBrokenOutput(t *testing.T) {
	for name, in := range map[string]string{
		"PowerShell error text instead of JSON": "New-Object : Retrieving the COM class factory failed",
		"update without any id":                 `[{"title":"x","kbs":[]}]`,
		"unparseable release time":              `[{"kbs":["KB1"],"released":"13/05/2025"}]`,
	} {
		if _, err := parseInventory([]byte(in)); err == nil {
			t.Errorf("%s: parseInventory succeeded, want an error", name)
		}
	}
}

func TestCategory(t *testing.T) {
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"Security Updates", "Windows 11"}, "security"},
		{[]string{"Windows Server 2022", "Critical Updates"}, "critical"},
		{[]string{"Drivers"}, "driver"},
		{[]string{"Feature Packs"}, "feature"},
		{[]string{"Definition Updates", "Microsoft Defender Antivirus"}, "bugfix"},
		{nil, "bugfix"},
	}
	for _, tc := range tests {
		if got := category(tc.names); got != tc.want {
			t.Errorf("category(%q) = %q, want %q", tc.names, got, tc.want)
		}
	}
}

func TestInstallFromRecordedOutput(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: cmdline(InstallScript), Stdout: runtest.File(t, "testdata", "install-mixed.json")},
	}}
	updates := []*protocol.Update{
		{ID: "KB5058411", Source: Source, Name: "KB5058411"},
		{ID: "KB5054979", Source: Source, Name: "KB5054979"},
		{ID: "KB5055523", Source: Source, Name: "KB5055523"},
		{ID: "KB5099999", Source: Source, Name: "KB5099999"},
		{ID: "KB890830", Source: Source, Name: "KB890830"},
		{ID: "openssl@3", Source: "apt", Name: "openssl"},
		{ID: "KB5058411 again", Source: Source, Name: "KB5058411"},
	}
	got, err := New(r).Install(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	gotShort := runtest.Outcomes(got)
	want := []runtest.Outcome{
		{"KB5058411", true, ""},
		{"KB5054979", false, "KB5054979: install failed (HRESULT 0x80240017)"},
		{"KB5055523", true, ""},
		{"KB5099999", false, "KB5099999 is not offered by Windows Update here (not applicable, superseded or withdrawn)"},
		{"KB890830", false, "KB890830: Exception from HRESULT: 0x80240438"},
		{"openssl@3", false, `update "openssl@3" is from "apt", not windows-update`},
		{"KB5058411 again", false, `update "KB5058411 again": listed twice in one job`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if env := r.Env()[0]; !cmp.Equal(env, []string{"PATCHLINE_UPDATES=KB5058411,KB5054979,KB5055523,KB5099999,KB890830"}) {
		t.Errorf("script env = %q, want the five valid KBs in job order", env)
	}
	if !strings.Contains(got[0].Output, "reboot required true") {
		t.Errorf("KB5058411 output = %q, want the reboot flag", got[0].Output)
	}
}

func TestInstallRefusesJobBeforeAnyCommand(t *testing.T) {
	kb := &protocol.Update{ID: "KB5058411", Source: Source, Name: "KB5058411"}
	tests := []struct {
		name, id string
	}{
		{"PowerShell after a quote", "KB1'; Remove-Item"},
		{"a second KB in the list", "KB5058411,KB5054979"},
		{"a KB number too short", "KB1"},
		{"an option", "-EncodedCommand"},
		{"a GUID with something after it", "0b6a2c47-9f1a-4b8e-8f57-3c8a1a9d2e10 x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refused := &protocol.Update{ID: "u", Source: Source, Name: tc.id}
			r := &runtest.Replay{T: t}
			got, err := New(r).Install(context.Background(), []*protocol.Update{kb, refused})
			if err != nil {
				t.Fatal(err)
			}
			want := []runtest.Outcome{
				{kb.ID, false, `not run: update "u" of this job was refused`},
				{"u", false, fmt.Sprintf("update \"u\": name %q is neither a KB number (KB and 4 to 10 digits) nor an update id (a GUID)", tc.id)},
			}
			if d := cmp.Diff(want, runtest.Outcomes(got)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if ran := r.Ran(); len(ran) != 0 {
				t.Errorf("ran %q for a refused job, want nothing", ran)
			}
		})
	}
	if err := Check(&protocol.Update{ID: "g", Source: Source, Name: "0b6a2c47-9f1a-4b8e-8f57-3c8a1a9d2e10"}); err != nil {
		t.Errorf("Check of an update id: %v", err)
	}
}

func TestInstallWhenPowerShellFails(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: cmdline(InstallScript), Exit: 1, Stderr: "powershell.exe : The term 'powershell.exe' is not recognized"},
	}}
	got, err := New(r).Install(context.Background(), []*protocol.Update{{ID: "KB5058411", Source: Source, Name: "KB5058411"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Succeeded || !strings.Contains(got[0].Error, "not recognized") {
		t.Errorf("results = %+v, want one failure naming PowerShell's error", got)
	}
}

func TestRebootPending(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want bool
	}{{"true\r\n", true}, {"false\r\n", false}} {
		r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: cmdline(winos.RebootScript), Stdout: tc.out}}}
		got, err := New(r).RebootPending(context.Background())
		if err != nil || got != tc.want {
			t.Errorf("RebootPending with output %q = %v, %v; want %v", tc.out, got, err, tc.want)
		}
	}
}

func FuzzParseWUAInventory(f *testing.F) {
	for _, name := range []string{"inventory-win11.json", "empty.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"kbs":[""],"updateId":"x"},{"kbs":null,"released":"2025-05-13T17:00:00-07:00","revision":-1}]`))
	categories := map[string]bool{"bugfix": true, "feature": true, "driver": true, "critical": true, "security": true}
	severities := map[string]bool{"": true, "critical": true, "important": true, "moderate": true, "low": true}
	f.Fuzz(func(t *testing.T, b []byte) {
		ups, err := parseInventory(b)
		if err != nil {
			return
		}
		for _, u := range ups {
			if u.ID == "" || u.Name != u.ID || u.Source != Source {
				t.Errorf("an update without an id: %+v", u)
			}
			if !categories[u.Category] || !severities[u.Severity] {
				t.Errorf("update %q: category %q, severity %q", u.ID, u.Category, u.Severity)
			}
			if !u.Released.IsZero() && u.Released.Location() != time.UTC {
				t.Errorf("update %q: release time %v not in UTC", u.ID, u.Released)
			}
			if u.Installed != (u.InstalledVersion == u.Version) || !u.Installed && u.InstalledVersion != "" {
				t.Errorf("update %q: installed %t with versions %q, %q", u.ID, u.Installed, u.Version, u.InstalledVersion)
			}
		}
	})
}
