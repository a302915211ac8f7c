// Package apttest builds what the real apt tests need: throwaway Debian
// packages at two versions, a local file repository offering the newer one
// from a security suite, and an isolated dpkg root with the older one
// installed. Nothing here touches the host's packages. It is for tests
// only.
package apttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/agent/backend/run"
)

// Require fails the test under CI=true, and skips it loudly elsewhere, when
// the real apt path cannot run here (tools missing, or not root).
func Require(t testing.TB) {
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
		why = "missing " + strings.Join(missing, ", ") + " (run .ci/systools.sh: Debian packages dpkg, apt-utils)"
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

// Root makes an isolated dpkg root with package pkg 1.0-1 installed, whose
// only apt source is a local repository (suite "<pkg>-security") offering
// 1.1-1. The package installs /opt/<pkg>/hello.txt saying "hello from
// <version>".
func Root(t testing.TB, pkg string) string {
	t.Helper()
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	old := buildDeb(t, work, pkg, "1.0-1")
	buildDeb(t, repo, pkg, "1.1-1")
	writeFile(t, filepath.Join(repo, "Packages"), string(sh(t, repo, "apt-ftparchive", "packages", ".")))
	writeFile(t, filepath.Join(repo, "Release"), string(sh(t, repo, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=Patchline-Test",
		"-o", "APT::FTPArchive::Release::Suite="+pkg+"-security", "release", ".")))

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
	return root
}

// HostHas reports whether the host's own dpkg database knows pkg.
func HostHas(t testing.TB, pkg string) bool {
	t.Helper()
	err := exec.Command("dpkg-query", "-W", pkg).Run()
	if code, ok := run.ExitCode(err); ok && code == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("host dpkg-query: %v", err)
	}
	return true
}

// buildDeb builds pkg at version into dir and returns its path.
func buildDeb(t testing.TB, dir, pkg, version string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "pkg")
	writeFile(t, filepath.Join(tree, "DEBIAN", "control"), "Package: "+pkg+"\nVersion: "+version+
		"\nArchitecture: all\nMaintainer: Patchline tests <tests@patchline.invalid>\nDescription: throwaway package for the apt tests\n")
	writeFile(t, filepath.Join(tree, "opt", pkg, "hello.txt"), "hello from "+version+"\n")
	deb := filepath.Join(dir, pkg+"_"+version+"_all.deb")
	sh(t, "", "dpkg-deb", "--root-owner-group", "--build", tree, deb)
	return deb
}

// sh runs a fixture-building command and fails the test on error.
func sh(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
