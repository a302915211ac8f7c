package apt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

func TestInventoryFromRecordedOutputs(t *testing.T) {
	tests := []struct {
		name     string
		simulate string
		// changelogs are the calls that learn from the candidates'
		// changelogs, given the cache directory.
		changelogs func(t testing.TB, cacheDir string) []runtest.Call
		golden     string
	}{
		{"Debian 12 with security, stable-updates, kernel and foreign-arch upgrades", "simulate-bookworm.txt", apttest.BookwormChangelogs, "inventory-bookworm.golden.json"},
		{"Debian 12 fully patched", "simulate-uptodate.txt", nil, "inventory-uptodate.golden.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			calls := apttest.ListCalls(t, tc.simulate)
			if tc.changelogs != nil {
				apttest.RequireDpkgDeb(t)
				calls = append(calls, tc.changelogs(t, cache)...)
			}
			r := &runtest.Replay{T: t, Calls: calls}
			got, err := New(r, Options{CacheDir: cache, Logger: slog.New(slog.DiscardHandler)}).Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			golden.CheckJSON(t, filepath.Join("testdata", tc.golden), got)
			for i, env := range r.Env() {
				if len(env) != 0 {
					t.Errorf("host backend ran %s with apt environment %q, want none", r.Ran()[i], env)
				}
			}
		})
	}
}

func TestInventoryLeavesOutWhatAJobCouldNotName(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "apt-get update -q"},
		{Cmd: "dpkg --print-architecture", Stdout: "amd64\n"},
		{Cmd: apttest.QueryCmd, Stdout: "bash\tamd64\t5.2.15-2+b7\tinstalled\nHello\tamd64\t1.0-1\tinstalled\nhello\tamd64\t1.0-1-\tinstalled\n"},
		{Cmd: "apt-get -s -q dist-upgrade", Stdout: "Inst h+llo* [1.0-1] (1.0-2 Debian:12/stable [amd64])\nInst bash [5.2.15-2+b7] (5.2.15-2+b8- Debian:12/stable [amd64])\n"},
	}}
	var logs bytes.Buffer
	got, err := New(r, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}).Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []*protocol.Update{{ID: "bash@5.2.15-2+b7", Source: Source, Name: "bash", Version: "5.2.15-2+b7", InstalledVersion: "5.2.15-2+b7", Installed: true}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("inventory (-want +got):\n%s", d)
	}
	for _, line := range []string{
		`level=WARN msg="installed package left out of the inventory: no job could name it to apt-get" backend=apt err="name \"Hello\" is not a Debian package name`,
		`level=WARN msg="installed package left out of the inventory: no job could name it to apt-get" backend=apt err="version \"1.0-1-\" is not a Debian version`,
		`level=WARN msg="upgrade left out of the inventory: no job could name it to apt-get" backend=apt err="name \"h+llo*\" is not a Debian package name`,
		`level=WARN msg="upgrade left out of the inventory: no job could name it to apt-get" backend=apt err="version \"5.2.15-2+b8-\" is not a Debian version`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s\n%s", line, logs.String())
		}
	}
}

func TestInventoryFailsWhenListsCannotRefresh(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "apt-get update -q", Exit: 100, Stderr: "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812 (apt-get)\n"},
	}}
	_, err := New(r, Options{}).Inventory(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Could not get lock") {
		t.Fatalf("Inventory error = %v, want the lock message", err)
	}
}

func TestParseSimulation(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []upgrade
		wantErr string
	}{
		{
			name: "Ubuntu 22.04 with jammy-security and jammy-updates",
			file: "simulate-jammy.txt",
			want: []upgrade{
				{name: "curl", current: "7.81.0-1ubuntu1.18", candidate: "7.81.0-1ubuntu1.20", releases: []string{"Ubuntu:22.04/jammy-updates", "Ubuntu:22.04/jammy-security"}},
				{name: "libcurl4", current: "7.81.0-1ubuntu1.18", candidate: "7.81.0-1ubuntu1.20", releases: []string{"Ubuntu:22.04/jammy-updates", "Ubuntu:22.04/jammy-security"}},
				{name: "snapd", current: "2.63+22.04ubuntu0.1", candidate: "2.66.1+22.04", releases: []string{"Ubuntu:22.04/jammy-updates"}},
			},
		},
		{name: "nothing to upgrade", file: "simulate-uptodate.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSimulation([]byte(runtest.File(t, "testdata", tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(upgrade{})); d != "" {
				t.Errorf("upgrades (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseSimulationRejectsMangledInstLines(t *testing.T) {
	for _, line := range []string{
		"Inst openssl",
		"Inst openssl [3.0.15-1~deb12u1 (3.0.16-1 Debian:12/stable [amd64])",
		"Inst openssl [3.0.15-1~deb12u1] 3.0.16-1 Debian:12/stable [amd64]",
		"Inst openssl [3.0.15-1~deb12u1] (3.0.16-1 Debian:12/stable [amd64]",
		"Inst openssl [3.0.15-1~deb12u1] ( Debian:12/stable [amd64])",
	} {
		if _, err := parseSimulation([]byte(line + "\n")); err == nil {
			t.Errorf("parseSimulation(%q) succeeded, want an error", line)
		}
	}
}

func TestParseInstalled(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []pkg
		wantErr bool
	}{
		{
			name: "native, arch-all and foreign-arch packages; removed package with config files left out",
			in:   "bash\tamd64\t5.2.15-2+b7\tinstalled\nlibc6\ti386\t2.36-9+deb12u9\tinstalled\ntzdata\tall\t2025a-0+deb12u1\tinstalled\nrsyslog\tamd64\t8.2302.0-1\tconfig-files\n",
			want: []pkg{{"bash", "5.2.15-2+b7"}, {"libc6:i386", "2.36-9+deb12u9"}, {"tzdata", "2025a-0+deb12u1"}},
		},
		{name: "empty database", in: ""},
		{name: "wrong format string", in: "bash 5.2.15-2+b7\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseInstalled([]byte(tc.in), "amd64")
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(pkg{})); d != "" {
				t.Errorf("packages (-want +got):\n%s", d)
			}
		})
	}
}

func TestInstallFromRecordedOutputs(t *testing.T) {
	known := "dpkg-query -W -- "
	aptInstall := "apt-get install -y -q --only-upgrade -o Dpkg::Options::=--force-confold -o APT::Cmd::Pattern-Only=true -- "
	verify := "dpkg-query -W -f=${Version}\t${db:Status-Status} -- "
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: known + "openssl", Stdout: "openssl\t3.0.15-1~deb12u1\n"},
		{Cmd: aptInstall + "openssl=3.0.16-1~deb12u1", Stdout: runtest.File(t, "testdata", "install-openssl.txt")},
		{Cmd: verify + "openssl", Stdout: "3.0.16-1~deb12u1\tinstalled"},
		{Cmd: known + "tzdata", Stdout: "tzdata\t2025a-0+deb12u1\n"},
		{Cmd: aptInstall + "tzdata=2099a-0", Exit: 100, Stdout: "Reading package lists...\n", Stderr: "E: Version '2099a-0' for 'tzdata' was not found\n"},
		{Cmd: known + "nginx", Exit: 1, Stderr: "dpkg-query: no packages found matching nginx\n"},
		{Cmd: known + "hell.", Exit: 1, Stderr: "dpkg-query: no packages found matching hell.\n"},
		{Cmd: known + "curl", Stdout: "curl\t7.88.1-10+deb12u8\n"},
		{Cmd: aptInstall + "curl=7.88.1-10+deb12u12", Stdout: "Skipping curl, it is not installed and only upgrades are requested.\n"},
		{Cmd: verify + "curl", Stdout: "7.88.1-10+deb12u8\tinstalled"},
	}}
	updates := []*protocol.Update{
		{ID: "openssl@3.0.16-1~deb12u1", Source: "apt", Name: "openssl", Version: "3.0.16-1~deb12u1"},
		{ID: "tzdata@2099a-0", Source: "apt", Name: "tzdata", Version: "2099a-0"},
		{ID: "nginx@1.22.1-9", Source: "apt", Name: "nginx", Version: "1.22.1-9"},
		{ID: "hell.@1.0-2", Source: "apt", Name: "hell.", Version: "1.0-2"},
		{ID: "curl@7.88.1-10+deb12u12", Source: "apt", Name: "curl", Version: "7.88.1-10+deb12u12"},
		{ID: "KB5034441", Source: "windows-update", Name: "KB5034441", Version: "1"},
	}
	got, err := New(r, Options{}).Install(context.Background(), updates)
	if err != nil {
		t.Fatal(err)
	}
	gotShort := runtest.Outcomes(got)
	want := []runtest.Outcome{
		{"openssl@3.0.16-1~deb12u1", true, ""},
		{"tzdata@2099a-0", false, "apt-get install tzdata=2099a-0: exit status 100"},
		{"nginx@1.22.1-9", false, `update "nginx@1.22.1-9": dpkg knows no package named exactly "nginx"; not passed to apt-get, which would read it as a pattern`},
		{"hell.@1.0-2", false, `update "hell.@1.0-2": dpkg knows no package named exactly "hell."; not passed to apt-get, which would read it as a pattern`},
		{"curl@7.88.1-10+deb12u12", false, `apt-get install curl=7.88.1-10+deb12u12 left version "7.88.1-10+deb12u8" (installed)`},
		{"KB5034441", false, `update "KB5034441" is from "windows-update", not apt`},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if !strings.Contains(got[0].Output, "Setting up openssl (3.0.16-1~deb12u1)") {
		t.Errorf("openssl output lost apt-get's log:\n%s", got[0].Output)
	}
	if !strings.Contains(got[1].Output, "E: Version '2099a-0' for 'tzdata' was not found") {
		t.Errorf("tzdata output lost apt-get's error:\n%s", got[1].Output)
	}
	for i, env := range r.Env() {
		if strings.HasPrefix(r.Ran()[i], "apt-get install") && !cmp.Equal(env, []string{"DEBIAN_FRONTEND=noninteractive"}) {
			t.Errorf("%s ran with env %q, want DEBIAN_FRONTEND=noninteractive", r.Ran()[i], env)
		}
	}
}

func TestInstallRefusesJobBeforeAnyCommand(t *testing.T) {
	openssl := &protocol.Update{ID: "openssl@3.0.16-1~deb12u1", Source: "apt", Name: "openssl", Version: "3.0.16-1~deb12u1"}
	tests := []struct {
		name    string
		refused *protocol.Update
		want    string
	}{
		{"a version ending in - (apt-get would remove the package)",
			&protocol.Update{ID: "hello@1.0-1-", Source: "apt", Name: "hello", Version: "1.0-1-"},
			`update "hello@1.0-1-": version "1.0-1-" is not a Debian version: it ends in "-": its Debian revision, after the last "-", is empty (Debian policy 5.6.12), and apt-get reads a trailing "-" as "remove"`},
		{"a regular expression and a glob in the name",
			&protocol.Update{ID: "h+llo*@1.0-2", Source: "apt", Name: "h+llo*", Version: "1.0-2"},
			`update "h+llo*@1.0-2": name "h+llo*" is not a Debian package name: it contains '*'; a package name has only lowercase letters, digits and + - . (Debian policy 5.6.1)`},
		{"an option for a name",
			&protocol.Update{ID: "evil", Source: "apt", Name: "-oAPT::Update::Pre-Invoke::=touch /pwned", Version: "1"},
			`update "evil": name "-oAPT::Update::Pre-Invoke::=touch /pwned" is not a Debian package name: it must start with a lowercase letter or digit (Debian policy 5.6.1)`},
		{"an option after a space in the version",
			&protocol.Update{ID: "evil2", Source: "apt", Name: "bash", Version: "1 -o"},
			`update "evil2": version "1 -o" is not a Debian version: its upstream version "1 " contains ' '; an upstream version has only letters, digits and . + ~ (- only before a Debian revision, : only after an epoch) (Debian policy 5.6.12)`},
		{"a release instead of a version",
			&protocol.Update{ID: "openssl/bookworm", Source: "apt", Name: "openssl/bookworm-security", Version: "3.0.16-1~deb12u1"},
			`update "openssl/bookworm": name "openssl/bookworm-security" is not a Debian package name: it contains '/'; a package name has only lowercase letters, digits and + - . (Debian policy 5.6.1)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtest.Replay{T: t}
			got, err := New(r, Options{}).Install(context.Background(), []*protocol.Update{openssl, tc.refused})
			if err != nil {
				t.Fatal(err)
			}
			want := []runtest.Outcome{
				{openssl.ID, false, fmt.Sprintf("not run: update %q of this job was refused", tc.refused.ID)},
				{tc.refused.ID, false, tc.want},
			}
			if d := cmp.Diff(want, runtest.Outcomes(got)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if ran := r.Ran(); len(ran) != 0 {
				t.Errorf("ran %q for a refused job, want nothing", ran)
			}
		})
	}
}

func TestInstallStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &runtest.Replay{T: t}
	got, err := New(r, Options{}).Install(ctx, []*protocol.Update{{ID: "openssl@3.0.16-1", Source: "apt", Name: "openssl", Version: "3.0.16-1"}})
	if err == nil || len(got) != 0 || len(r.Ran()) != 0 {
		t.Errorf("Install after cancel = %v, %v, ran %q; want no results, an error, nothing run", got, err, r.Ran())
	}
}

func TestRebootPending(t *testing.T) {
	tests := []struct {
		name string
		flag string
		want bool
	}{
		{"no flag file", "", false},
		{"flag under /run", "run/reboot-required", true},
		{"flag under /var/run", "var/run/reboot-required", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.flag != "" {
				p := filepath.Join(root, tc.flag)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("*** System restart required ***\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := New(run.Exec{}, Options{Root: root}).RebootPending(context.Background())
			if err != nil || got != tc.want {
				t.Errorf("RebootPending = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseSimulation(f *testing.F) {
	for _, name := range []string{"simulate-bookworm.txt", "simulate-jammy.txt", "simulate-uptodate.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Inst a [] ()\nInst b [1] (2 [x\nInst c (\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ups, err := parseSimulation(b)
		if err != nil {
			return
		}
		for _, u := range ups {
			if u.name == "" || u.current == "" || u.candidate == "" {
				t.Errorf("parsed upgrade with an empty field: %+v", u)
			}
		}
	})
}

func FuzzParseInstalled(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "dpkg-query-bookworm.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("\t\t\t\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parseInstalled(b, "amd64")
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.name == "" {
				t.Errorf("parsed a package with no name: %+v", p)
			}
		}
	})
}
