package apttest

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/patchline/patchline/agent/backend/run/runtest"
)

// QueryCmd is the dpkg-query command of the apt backend's inventory.
const QueryCmd = "dpkg-query -W -f=${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Status}\\n"

// aptDir is the apt backend's source directory, whose testdata holds the
// recorded outputs.
func aptDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// RealChangelog returns, decompressed, a changelog of a real package kept
// in the changelog parser's testdata (see its README.md).
func RealChangelog(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(aptDir(), "internal", "changelog", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return text
}

// ChangelogAsOf is RealChangelog cut to begin at version's entry: the
// changelog as the package at that version shipped it.
func ChangelogAsOf(t testing.TB, name, version string) []byte {
	t.Helper()
	text := RealChangelog(t, name)
	i := bytes.Index(text, []byte(" ("+version+") "))
	if i < 0 {
		t.Fatalf("%s has no entry for %s", name, version)
	}
	return text[bytes.LastIndexByte(text[:i], '\n')+1:]
}

// ListCalls are the recorded commands of a Debian 12 endpoint's inventory
// up to its candidates' changelogs. simulate names the recorded
// `apt-get -s dist-upgrade` output in the apt backend's testdata:
// simulate-bookworm.txt (security, stable-updates, kernel and
// foreign-architecture upgrades) or simulate-uptodate.txt.
func ListCalls(t testing.TB, simulate string) []runtest.Call {
	t.Helper()
	dir := filepath.Join(aptDir(), "testdata")
	return []runtest.Call{
		{Cmd: "apt-get update -q", Stdout: "Hit:1 http://deb.example/debian bookworm InRelease\nReading package lists...\n"},
		{Cmd: "dpkg --print-architecture", Stdout: "amd64\n"},
		{Cmd: QueryCmd, Stdout: runtest.File(t, dir, "dpkg-query-bookworm.txt")},
		{Cmd: "apt-get -s -q dist-upgrade", Stdout: runtest.File(t, dir, simulate)},
	}
}

// BookwormChangelogs are the recorded commands that follow ListCalls of
// simulate-bookworm.txt, for a backend whose Options.CacheDir is cacheDir:
// apt-cache's description of the candidates (show-bookworm.txt: Debian
// 12's records of these packages, with the versions set to the recorded
// candidates') and the downloads of their packages, which the replay
// builds (dpkg-deb: see RequireDpkgDeb) with the changelogs the real
// packages shipped. openssl and libssl3 share a source, so only openssl,
// the smaller, is downloaded; openssh-server's doc directory is a link to
// openssh-client's, which is downloaded next; tzdata's download fails;
// linux-image-amd64 and libgcc-s1 ship no changelog of their own.
func BookwormChangelogs(t testing.TB, cacheDir string) []runtest.Call {
	t.Helper()
	dl := filepath.Join(cacheDir, "download")
	download := func(id, name string, deb Deb) runtest.Call {
		dir := filepath.Join(dl, id)
		return runtest.Call{
			Cmd:    "env --chdir=" + dir + " apt-get download -q " + name + "=" + deb.Version,
			Stdout: "Get:1 http://deb.example/debian bookworm/main " + deb.Package + " " + deb.Version + "\n",
			Effect: func() error { BuildDeb(t, dir, deb); return nil },
		}
	}
	return []runtest.Call{
		{Cmd: "apt-cache show libssl3=3.0.16-1~deb12u1 openssl=3.0.16-1~deb12u1 openssh-server=1:9.2p1-2+deb12u5 openssh-client=1:9.2p1-2+deb12u5 " +
			"tzdata=2025a-0+deb12u1 linux-image-amd64=6.1.128-1 libgcc-s1:i386=12.2.0-14+deb12u1",
			Stdout: runtest.File(t, filepath.Join(aptDir(), "testdata"), "show-bookworm.txt")},
		download("openssl@3.0.16-1~deb12u1", "openssl", Deb{Package: "openssl", Version: "3.0.16-1~deb12u1", Arch: "amd64",
			Files: map[string][]byte{"usr/share/doc/openssl/changelog.Debian.gz": Gzip(t, ChangelogAsOf(t, "openssl_3.0.22-1~deb12u2.changelog.Debian.gz", "3.0.16-1~deb12u1"))}}),
		download("openssh-server@1:9.2p1-2+deb12u5", "openssh-server", Deb{Package: "openssh-server", Version: "1:9.2p1-2+deb12u5", Arch: "amd64",
			Symlinks: map[string]string{"usr/share/doc/openssh-server": "openssh-client"}}),
		download("openssh-client@1:9.2p1-2+deb12u5", "openssh-client", Deb{Package: "openssh-client", Version: "1:9.2p1-2+deb12u5", Arch: "amd64",
			Files: map[string][]byte{"usr/share/doc/openssh-client/changelog.Debian.gz": Gzip(t, ChangelogAsOf(t, "openssh_epoch1-9.2p1-2+deb12u10.head.txt", "1:9.2p1-2+deb12u5"))}}),
		{Cmd: "env --chdir=" + filepath.Join(dl, "tzdata@2025a-0+deb12u1") + " apt-get download -q tzdata=2025a-0+deb12u1", Exit: 100,
			Stderr: "E: Failed to fetch http://deb.example/debian/pool/main/t/tzdata/tzdata_2025a-0%2bdeb12u1_all.deb  404  Not Found [IP: 192.0.2.7 80]\n"},
		download("linux-image-amd64@6.1.128-1", "linux-image-amd64", Deb{Package: "linux-image-amd64", Version: "6.1.128-1", Arch: "amd64",
			Symlinks: map[string]string{"usr/share/doc/linux-image-amd64": "linux-image-6.1.0-31-amd64"}}),
		download("libgcc-s1:i386@12.2.0-14+deb12u1", "libgcc-s1:i386", Deb{Package: "libgcc-s1", Version: "12.2.0-14+deb12u1", Arch: "i386",
			Symlinks: map[string]string{"usr/share/doc/libgcc-s1": "gcc-12-base"}}),
	}
}
