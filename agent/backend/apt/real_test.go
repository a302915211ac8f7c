package apt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/reconciler/state"
)

const demoPkg = "patchline-demo-hello"

// requireRealApt skips (or under CI fails) when the real apt test cannot
// run here.
func requireRealApt(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "apt-get", "apt-ftparchive"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	why := ""
	switch {
	case len(missing) > 0:
		why = "missing " + strings.Join(missing, ", ") + " (run .ci/systools.sh: Debian packages dpkg-dev, apt-utils)"
	case os.Geteuid() != 0:
		why = "not root: apt-get and dpkg need root even for an isolated root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real apt test cannot run: %s", why)
	}
	t.Skipf("!!! SKIPPING the real apt test: %s !!!", why)
}

// sh runs a fixture-building command and fails the test on error.
func sh(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildDeb builds the demo package at version into dir and returns its path.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "pkg")
	writeFile(t, filepath.Join(tree, "DEBIAN", "control"), "Package: "+demoPkg+"\nVersion: "+version+
		"\nArchitecture: all\nMaintainer: Patchline tests <tests@patchline.invalid>\nDescription: throwaway package for the apt backend test\n")
	writeFile(t, filepath.Join(tree, "opt", "patchline-demo", "hello.txt"), "hello from "+version+"\n")
	deb := filepath.Join(dir, demoPkg+"_"+version+"_all.deb")
	sh(t, "", "dpkg-deb", "--root-owner-group", "--build", tree, deb)
	return deb
}

// hostHasDemo reports whether the host's own dpkg database knows the demo
// package.
func hostHasDemo(t *testing.T) bool {
	t.Helper()
	err := exec.Command("dpkg-query", "-W", demoPkg).Run()
	if code, ok := run.ExitCode(err); ok && code == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("host dpkg-query: %v", err)
	}
	return true
}

// TestRealAptUpgradesInIsolatedRoot builds two versions of a throwaway
// package, serves the newer one from a local file repository, installs the
// older one into an isolated dpkg root, and drives the real apt backend
// against that root: it must see the upgrade, install it, and then report
// it installed, without touching the host's packages.
func TestRealAptUpgradesInIsolatedRoot(t *testing.T) {
	requireRealApt(t)
	if hostHasDemo(t) {
		t.Fatalf("host already has %s installed; remove it first", demoPkg)
	}
	work := t.TempDir()

	repo := filepath.Join(work, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	old := buildDeb(t, work, "1.0-1")
	buildDeb(t, repo, "1.1-1")
	writeFile(t, filepath.Join(repo, "Packages"), string(sh(t, repo, "apt-ftparchive", "packages", ".")))
	writeFile(t, filepath.Join(repo, "Release"), string(sh(t, repo, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=Patchline-Demo",
		"-o", "APT::FTPArchive::Release::Suite=demo-security", "release", ".")))

	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/apt/apt.conf.d", "etc/apt/sources.list.d",
		"etc/apt/preferences.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "")
	// The only source is the local repository: no network, and not the
	// host's sources.list.
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb [trusted=yes] file:"+repo+" ./\n")
	sh(t, "", "dpkg", "--root="+root, "--install", old)

	ctx := context.Background()
	b := New(run.Exec{}, Options{Root: root})

	before, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []*state.Update{
		{ID: demoPkg + "@1.0-1", Source: "apt", Name: demoPkg, Version: "1.0-1", InstalledVersion: "1.0-1", Installed: true},
		{ID: demoPkg + "@1.1-1", Source: "apt", Name: demoPkg, Version: "1.1-1", InstalledVersion: "1.0-1", Category: "security", Severity: "important"},
	}
	if d := cmp.Diff(want, before); d != "" {
		t.Fatalf("inventory before install (-want +got):\n%s", d)
	}

	results, err := b.Install(ctx, []*state.Update{before[1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].Succeeded {
		t.Fatalf("install results = %+v, want one success", results)
	}
	if !strings.Contains(results[0].Output, "Setting up "+demoPkg+" (1.1-1)") {
		t.Errorf("install output lacks dpkg's log:\n%s", results[0].Output)
	}
	if got, err := os.ReadFile(filepath.Join(root, "opt/patchline-demo/hello.txt")); err != nil || string(got) != "hello from 1.1-1\n" {
		t.Errorf("file in root after upgrade = %q, %v; want the 1.1-1 content", got, err)
	}

	after, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []*state.Update{
		{ID: demoPkg + "@1.1-1", Source: "apt", Name: demoPkg, Version: "1.1-1", InstalledVersion: "1.1-1", Installed: true},
	}
	if d := cmp.Diff(want, after); d != "" {
		t.Errorf("inventory after install (-want +got):\n%s", d)
	}

	if pending, err := b.RebootPending(ctx); err != nil || pending {
		t.Errorf("RebootPending = %v, %v; want false", pending, err)
	}
	if hostHasDemo(t) {
		t.Errorf("the host's dpkg database now has %s: the backend escaped its root", demoPkg)
	}
	if _, err := os.Stat("/opt/patchline-demo"); err == nil {
		t.Errorf("/opt/patchline-demo exists on the host: the backend escaped its root")
	}
}
