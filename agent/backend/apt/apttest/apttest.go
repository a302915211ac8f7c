// Package apttest builds what the real apt tests need: Debian packages
// (BuildDeb), throwaway ones at two versions with changelogs, a local file
// repository offering the newer one from a security suite, and an isolated
// dpkg root with the older one installed. Nothing here touches the host's
// packages. It is for tests only.
package apttest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/agent/backend/run"
)

// Require fails the test under CI=true, and skips it loudly elsewhere, when
// the real apt path cannot run here (apt's and dpkg's tools or the further
// tools named missing, or not root).
func Require(t testing.TB, tools ...string) {
	t.Helper()
	require(t, true, append([]string{"dpkg", "dpkg-deb", "dpkg-query", "apt-get", "apt-cache", "apt-ftparchive"}, tools...)...)
}

// RequireDpkgDeb is Require for tests that only build and read packages
// (BuildDeb), which needs dpkg-deb but not root.
func RequireDpkgDeb(t testing.TB) {
	t.Helper()
	require(t, false, "dpkg-deb")
}

func require(t testing.TB, root bool, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	why := ""
	switch {
	case len(missing) > 0:
		why = "missing " + strings.Join(missing, ", ") + " (run .ci/systools.sh: Debian packages dpkg, apt-utils, dpkg-dev)"
	case root && os.Geteuid() != 0:
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
// <version>", and its changelog: 1.1-1, urgency high, fixes CVE-2024-0727
// and was released on 2024-01-30 at 20:53:17 UTC; 1.0-1 has urgency low.
func Root(t testing.TB, pkg string) string {
	t.Helper()
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	old := buildDeb(t, work, pkg, "1.0-1")
	buildDeb(t, mkdir(t, repo), pkg, "1.1-1")
	return rootOn(t, work, repo, pkg+"-security", old)
}

// RollbackRoot makes an isolated dpkg root whose only apt source is a
// local repository offering package pkg at each of versions, with
// installed (one of them) installed. Each version installs
// /opt/<pkg>/version.txt holding the version.
func RollbackRoot(t testing.TB, pkg, installed string, versions ...string) string {
	t.Helper()
	work := t.TempDir()
	repo := mkdir(t, filepath.Join(work, "repo"))
	var file string
	for _, v := range versions {
		f := BuildDeb(t, repo, Deb{Package: pkg, Version: v, Files: map[string][]byte{"opt/" + pkg + "/version.txt": []byte(v + "\n")}})
		if v == installed {
			file = f
		}
	}
	if file == "" {
		t.Fatalf("RollbackRoot: installed version %s is not one of %q", installed, versions)
	}
	return rootOn(t, work, repo, pkg+"-updates", file)
}

func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rootOn indexes repo as suite, makes an isolated root under work whose
// only source it is, and installs the package file install into it.
func rootOn(t testing.TB, work, repo, suite, install string) string {
	t.Helper()
	writeFile(t, filepath.Join(repo, "Packages"), string(sh(t, repo, "apt-ftparchive", "packages", ".")))
	writeFile(t, filepath.Join(repo, "Release"), string(sh(t, repo, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=Patchline-Test",
		"-o", "APT::FTPArchive::Release::Suite="+suite, "release", ".")))

	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/apt/apt.conf.d", "etc/apt/sources.list.d",
		"etc/apt/preferences.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt"} {
		mkdir(t, filepath.Join(root, d))
	}
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "")
	// The only source is the local repository: no network, and not the
	// host's sources.list.
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb [trusted=yes] file:"+repo+" ./\n")
	sh(t, "", "dpkg", "--root="+root, "--install", install)
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

// demoChangelog is the changelog of the throwaway package's 1.1-1; 1.0-1
// has its last entry only.
const demoChangelog = `%[1]s (1.1-1) %[1]s-security; urgency=high

  * Fix CVE-2024-0727 (a throwaway package of Patchline's tests).

 -- Patchline tests <tests@patchline.invalid>  Tue, 30 Jan 2024 20:53:17 +0000

%[1]s (1.0-1) unstable; urgency=low

  * Initial release.

 -- Patchline tests <tests@patchline.invalid>  Mon, 01 Jan 2024 12:00:00 +0000
`

// buildDeb builds the throwaway package pkg at version into dir and
// returns its path.
func buildDeb(t testing.TB, dir, pkg, version string) string {
	t.Helper()
	log := fmt.Sprintf(demoChangelog, pkg)
	if version == "1.0-1" {
		log = log[strings.Index(log, pkg+" (1.0-1)"):]
	}
	return BuildDeb(t, dir, Deb{Package: pkg, Version: version, Files: map[string][]byte{
		"opt/" + pkg + "/hello.txt":                     []byte("hello from " + version + "\n"),
		"usr/share/doc/" + pkg + "/changelog.Debian.gz": Gzip(t, []byte(log)),
	}})
}

// Deb describes a package for BuildDeb.
type Deb struct {
	Package, Version string
	// Arch is the architecture; "" means all.
	Arch string
	// Files maps paths in the package ("usr/share/doc/p/changelog.gz")
	// to their contents.
	Files map[string][]byte
	// Symlinks maps paths in the package to their targets.
	Symlinks map[string]string
}

// BuildDeb builds d with dpkg-deb into dir and returns its path. The file
// is named as apt names the packages it fetches: "name_version_arch.deb",
// an epoch's colon written %3a.
func BuildDeb(t testing.TB, dir string, d Deb) string {
	t.Helper()
	if d.Arch == "" {
		d.Arch = "all"
	}
	tree := filepath.Join(t.TempDir(), "pkg")
	writeFile(t, filepath.Join(tree, "DEBIAN", "control"), "Package: "+d.Package+"\nVersion: "+d.Version+
		"\nArchitecture: "+d.Arch+"\nMaintainer: Patchline tests <tests@patchline.invalid>\nDescription: package built by Patchline's tests\n")
	for p, content := range d.Files {
		writeFile(t, filepath.Join(tree, p), string(content))
	}
	for p, target := range d.Symlinks {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(tree, p)); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, d.Package+"_"+strings.ReplaceAll(d.Version, ":", "%3a")+"_"+d.Arch+".deb")
	sh(t, "", "dpkg-deb", "--root-owner-group", "--build", tree, deb)
	return deb
}

// Gzip compresses b, as packages ship their changelogs.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
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
