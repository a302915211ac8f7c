package apt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

const demoPkg = "patchline-demo-hello"

// TestRealAptUpgradesInIsolatedRoot builds two versions of a throwaway
// package, serves the newer one from a local file repository, installs the
// older one into an isolated dpkg root, and drives the real apt backend
// against that root: it must see the upgrade and what its changelog says
// (downloading it from the root's repository), install it, and then report
// it installed, without touching the host's packages.
func TestRealAptUpgradesInIsolatedRoot(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, demoPkg) {
		t.Fatalf("host already has %s installed; remove it first", demoPkg)
	}
	root := apttest.Root(t, demoPkg)

	ctx := context.Background()
	b := New(run.Exec{}, Options{Root: root, CacheDir: t.TempDir(), Logger: testLogger(t)})

	before, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []*protocol.Update{
		{ID: demoPkg + "@1.0-1", Source: "apt", Name: demoPkg, Version: "1.0-1", InstalledVersion: "1.0-1", Installed: true},
		{ID: demoPkg + "@1.1-1", Source: "apt", Name: demoPkg, Version: "1.1-1", InstalledVersion: "1.0-1", Category: "security",
			SourcePackage: demoPkg, CVEs: []string{"CVE-2024-0727"}, Urgency: "high", Released: time.Date(2024, 1, 30, 20, 53, 17, 0, time.UTC)},
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

// TestRealAptReadsNoPatternAndNoRemoval drives the real apt-get on an
// isolated root with the throwaway package 1.0-1 installed and 1.1-1
// offered. apt-get itself reads "patchline-demo-hell." (a name no package
// has) as a regular expression that matches the package, and a version
// ending in "-" as its removal; the backend must neither upgrade nor
// remove it for such a job.
func TestRealAptReadsNoPatternAndNoRemoval(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, demoPkg) {
		t.Fatalf("host already has %s installed; remove it first", demoPkg)
	}
	root := apttest.Root(t, demoPkg)
	ctx := context.Background()
	b := New(run.Exec{}, Options{Root: root, Logger: testLogger(t)})
	env, err := b.aptEnv()
	if err != nil {
		t.Fatal(err)
	}
	apt := func(args ...string) string {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := apt("update", "-q"); !strings.Contains(out, "Reading package lists") {
		t.Fatalf("apt-get update in the root:\n%s", out)
	}
	pattern := strings.TrimSuffix(demoPkg, "o") + "."

	// What apt-get does with these arguments when nothing guards it.
	for _, arg := range []struct{ arg, want string }{
		{pattern + "=1.1-1", "Inst " + demoPkg + " [1.0-1] (1.1-1"},
		{demoPkg + "=1.1-1-", "Remv " + demoPkg + " [1.0-1]"},
	} {
		if out := apt("-s", "-q", "install", "--only-upgrade", arg.arg); !strings.Contains(out, arg.want) {
			t.Fatalf("apt-get -s install %s no longer says %q, so this test shows nothing:\n%s", arg.arg, arg.want, out)
		}
	}
	// The backend's own command line: apt-get finds no package by the
	// pattern even before dpkg-query is asked.
	if out := apt(append([]string{"-s"}, installArgs(pattern, "1.1-1")...)...); strings.Contains(out, "Inst ") || !strings.Contains(out, "Unable to locate package "+pattern) {
		t.Errorf("apt-get -s %s:\n%s\nwant the package not found", strings.Join(installArgs(pattern, "1.1-1"), " "), out)
	}

	tests := []struct {
		name   string
		update *protocol.Update
		want   string
	}{
		{"a regular expression matching the package", &protocol.Update{ID: "pattern", Source: Source, Name: pattern, Version: "1.1-1"},
			fmt.Sprintf(`update "pattern": dpkg knows no package named exactly %q; not passed to apt-get, which would read it as a pattern`, pattern)},
		{"a version ending in -", &protocol.Update{ID: "removal", Source: Source, Name: demoPkg, Version: "1.1-1-"},
			`update "removal": version "1.1-1-" is not a Debian version: it ends in "-": its Debian revision, after the last "-", is empty (Debian policy 5.6.12), and apt-get reads a trailing "-" as "remove"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := b.Install(ctx, []*protocol.Update{tc.update})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].Succeeded || res[0].Error != tc.want {
				t.Errorf("results = %+v, want one failure: %s", res, tc.want)
			}
			out := shell(t, "", "dpkg-query", "--admindir="+filepath.Join(root, "var", "lib", "dpkg"), "-W", "-f=${Version} ${db:Status-Status}", demoPkg)
			if out != "1.0-1 installed" {
				t.Errorf("%s in the root after the job: %q, want 1.0-1 installed", demoPkg, out)
			}
		})
	}
}

// TestRealArchivePassesTheChecks runs the name and version checks over
// every package this machine's apt sources offer (all of Debian 12 here):
// a check that refused one would keep a real upgrade from ever being
// installed.
func TestRealArchivePassesTheChecks(t *testing.T) {
	apttest.Require(t)
	aptCandidate(t, "openssl") // refreshes apt's lists if they are missing
	out := shell(t, "", "apt-cache", "dumpavail")
	var name string
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			n++
			if err := checkPackage(name, v); err != nil {
				t.Errorf("%s %s: %v", name, v, err)
			}
		}
	}
	if n < 1000 {
		t.Fatalf("apt-cache dumpavail described %d packages; want this machine's archive", n)
	}
	t.Logf("%d packages and versions pass", n)
}

// TestRealOpenSSLChangelog fetches the openssl package this machine's own
// apt sources offer (bookworm-security's, on Debian 12) through the
// backend, as an inventory would for an endpoint five uploads behind, and
// checks what it learns against Debian's own changelog parser,
// dpkg-parsechangelog, run on a copy fetched and unpacked by apt-get and
// dpkg-deb. It names no openssl version: it asserts what holds of any.
func TestRealOpenSSLChangelog(t *testing.T) {
	apttest.Require(t, "dpkg-parsechangelog")
	ctx := context.Background()
	cand := aptCandidate(t, "openssl")

	// The reference: apt-get download and dpkg-deb -x, then
	// dpkg-parsechangelog over the entries since the sixth newest.
	ref := t.TempDir()
	shell(t, ref, "apt-get", "download", "-q", "openssl="+cand)
	debs, _ := filepath.Glob(filepath.Join(ref, "openssl_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download left %q", debs)
	}
	shell(t, ref, "dpkg-deb", "-x", debs[0], filepath.Join(ref, "x"))
	logFile := filepath.Join(ref, "changelog")
	gunzipFile(t, filepath.Join(ref, "x", "usr", "share", "doc", "openssl", "changelog.Debian.gz"), logFile)
	installed := strings.TrimSpace(shell(t, "", "dpkg-parsechangelog", "-l", logFile, "--offset", "5", "--count", "1", "-S", "Version"))
	if top := strings.TrimSpace(shell(t, "", "dpkg-parsechangelog", "-l", logFile, "-S", "Version")); top != cand {
		t.Fatalf("the changelog of openssl %s starts at %s", cand, top)
	}
	field := func(name string) string {
		return strings.TrimSpace(shell(t, "", "dpkg-parsechangelog", "-l", logFile, "--since", installed, "-S", name))
	}
	wantUrgency := strings.ToLower(strings.Fields(field("Urgency"))[0])
	wantCVEs := regexp.MustCompile(`\bCVE-[0-9]{4}-[0-9]{4,}\b`).FindAllString(field("Changes"), -1)
	slices.Sort(wantCVEs)
	wantCVEs = slices.Compact(wantCVEs)
	ts, err := strconv.ParseInt(strings.TrimSpace(shell(t, "", "dpkg-parsechangelog", "-l", logFile, "-S", "Timestamp")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}

	r := &countingRunner{}
	b := New(r, Options{CacheDir: t.TempDir(), Logger: testLogger(t)})
	u := &protocol.Update{ID: "openssl@" + cand, Source: Source, Name: "openssl", Version: cand, InstalledVersion: installed, Category: "security"}
	native := strings.TrimSpace(shell(t, "", "dpkg", "--print-architecture"))
	if err := b.addFacts(ctx, nil, native, []*protocol.Update{u}); err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(u, "", "  ")
	t.Logf("openssl %s for an endpoint at %s:\n%s", cand, installed, js)

	if u.SourcePackage != "openssl" || u.SourcePackage != field("Source") {
		t.Errorf("source package %q, want openssl (dpkg-parsechangelog: %q)", u.SourcePackage, field("Source"))
	}
	if !u.Released.Equal(time.Unix(ts, 0)) || !u.Released.After(time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC)) || u.Released.Location() != time.UTC {
		t.Errorf("released %v, want the candidate entry's trailer date %v (UTC), after 2023-06-01", u.Released, time.Unix(ts, 0).UTC())
	}
	if !slices.Contains(protocol.Urgencies, u.Urgency) || u.Urgency != wantUrgency {
		t.Errorf("urgency %q, want %q (the highest of the entries since %s)", u.Urgency, wantUrgency, installed)
	}
	if len(u.CVEs) == 0 {
		t.Errorf("no CVE ids in five uploads of openssl")
	}
	for _, id := range u.CVEs {
		if !strings.HasPrefix(id, "CVE-20") {
			t.Errorf("CVE id %q", id)
		}
	}
	got := slices.Clone(u.CVEs)
	slices.Sort(got)
	if !slices.Equal(got, wantCVEs) {
		t.Errorf("CVE ids %q, want those dpkg-parsechangelog shows: %q", u.CVEs, wantCVEs)
	}

	ran := r.ran()
	again := &protocol.Update{ID: u.ID, Source: Source, Name: "openssl", Version: cand, InstalledVersion: installed, Category: "security"}
	if err := b.addFacts(ctx, nil, native, []*protocol.Update{again}); err != nil {
		t.Fatal(err)
	}
	if len(r.ran()) != len(ran) {
		t.Errorf("the second inventory ran %q; want nothing, the facts are kept", r.ran()[len(ran):])
	}
	if !cmp.Equal(u, again) {
		t.Errorf("kept facts differ:\n%s", cmp.Diff(u, again))
	}
}

// aptCandidate returns the version apt would install of pkg, refreshing
// apt's lists first if it knows none.
func aptCandidate(t *testing.T, pkg string) string {
	t.Helper()
	for try := 0; try < 2; try++ {
		out := shell(t, "", "apt-cache", "policy", pkg)
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && v != "(none)" {
				return v
			}
		}
		if try == 0 {
			// Missing lists: a sources.list entry that cannot be reached
			// makes apt-get update fail without harming the others.
			out, err := exec.Command("apt-get", "update", "-q").CombinedOutput()
			t.Logf("apt-get update: %v\n%s", err, out)
		}
	}
	t.Fatalf("apt knows no candidate of %s, even after apt-get update", pkg)
	return ""
}

// shell runs a command for the test's reference and fails the test on
// error.
func shell(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func gunzipFile(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if _, err := text.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// countingRunner is run.Exec that remembers the commands it ran.
type countingRunner struct {
	mu       sync.Mutex // guards commands
	commands []string
}

func (c *countingRunner) Run(ctx context.Context, name string, args []string, env []string) ([]byte, []byte, error) {
	c.mu.Lock()
	c.commands = append(c.commands, strings.Join(append([]string{name}, args...), " "))
	c.mu.Unlock()
	return run.Exec{}.Run(ctx, name, args, env)
}

func (c *countingRunner) ran() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.commands)
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
