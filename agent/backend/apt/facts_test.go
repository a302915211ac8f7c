package apt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/apt/internal/changelog"
	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/protocol"
)

func realEntries(t testing.TB, name string) []*changelog.Entry {
	t.Helper()
	entries, err := changelog.Parse(bytes.NewReader(apttest.RealChangelog(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestFactsFromEntries(t *testing.T) {
	openssl := realEntries(t, "openssl_3.0.22-1~deb12u2.changelog.Debian.gz")
	openssh := realEntries(t, "openssh_epoch1-9.2p1-2+deb12u10.head.txt")
	bash := append(realEntries(t, "bash_5.2.15-2+b13.changelog.Debian.amd64.gz"), realEntries(t, "bash_5.2.15-2+b13.changelog.Debian.gz")...)
	tzdataBad, tzdataErr := changelog.Parse(bytes.NewReader(apttest.RealChangelog(t, "tzdata_2026f-0+deb12u1.bad-trailer.txt")))
	if tzdataErr == nil {
		t.Fatal("the malformed changelog parsed without an error")
	}
	cand := func(source, name, installed, version, sourceVersion string) *candidate {
		return &candidate{update: &protocol.Update{ID: name + "@" + version, Name: name, Version: version, InstalledVersion: installed},
			pkg: name, source: source, sourceVersion: sourceVersion}
	}
	var many []*changelog.Entry
	for i := 2; i > 0; i-- {
		e := &changelog.Entry{Source: "big", Version: fmt.Sprint(i), Date: time.Unix(int64(i), 0).UTC()}
		for j := 0; j < 600; j++ {
			e.CVEs = append(e.CVEs, fmt.Sprintf("CVE-2024-%05d", i*1000+j))
		}
		many = append(many, e)
	}
	many = append(many, &changelog.Entry{Source: "big", Version: "0"})

	tests := []struct {
		name    string
		c       *candidate
		entries []*changelog.Entry
		readErr error
		want    facts
		wantWhy string
	}{
		{
			name:    "three uploads since the installed version: their CVEs, the highest urgency, the candidate's date",
			c:       cand("openssl", "openssl", "3.0.20-1~deb12u1", "3.0.22-1~deb12u2", "3.0.22-1~deb12u2"),
			entries: openssl,
			want: facts{
				CVEs: []string{"CVE-2026-7383", "CVE-2026-9076", "CVE-2026-34180", "CVE-2026-34182", "CVE-2026-35189", "CVE-2026-42766", "CVE-2026-42767",
					"CVE-2026-42770", "CVE-2026-45445", "CVE-2026-45446", "CVE-2026-45447", "CVE-2026-54872", "CVE-2026-54874", "CVE-2026-63072",
					"CVE-2026-63074", "CVE-2026-63076", "CVE-2026-75803", "CVE-2026-75805", "CVE-2026-75806", "CVE-2026-77696", "CVE-2026-84782"},
				Urgency: "high", Released: time.Date(2026, 10, 21, 9, 54, 24, 0, time.UTC),
			},
		},
		{
			name:    "versions with an epoch",
			c:       cand("openssh", "openssh-client", "1:9.2p1-2+deb12u7", "1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u10"),
			entries: openssh,
			want: facts{
				CVEs:    []string{"CVE-2025-61984", "CVE-2025-61985", "CVE-2026-3497", "CVE-2026-35385", "CVE-2026-35386", "CVE-2026-35387", "CVE-2026-35388", "CVE-2026-35414"},
				Urgency: "medium", Released: time.Date(2026, 5, 5, 10, 26, 56, 0, time.UTC),
			},
		},
		{
			name:    "binNMU over an older binNMU of the same source: only the rebuild",
			c:       cand("bash", "bash", "5.2.15-2+b8", "5.2.15-2+b13", "5.2.15-2"),
			entries: bash,
			want:    facts{Urgency: "low", Released: time.Date(2026, 5, 7, 20, 33, 2, 0, time.UTC)},
		},
		{
			name:    "binNMU over an older source version: the rebuild and the source's new entries",
			c:       cand("bash", "bash", "5.2.15-1+b1", "5.2.15-2+b13", "5.2.15-2"),
			entries: bash,
			want:    facts{Urgency: "medium", Released: time.Date(2026, 5, 7, 20, 33, 2, 0, time.UTC)},
		},
		{
			name:    "apt's source version names the candidate's entry",
			c:       cand("bash", "bash", "5.2.15-1", "5.2.15-2+b99", "5.2.15-2"),
			entries: bash[1:],
			want:    facts{Urgency: "medium", Released: time.Date(2023, 1, 2, 12, 6, 21, 0, time.UTC)},
		},
		{
			name:    "installed version not in the changelog (a local build): the candidate's entry only",
			c:       cand("openssl", "openssl", "3.0.22-1~local1", "3.0.22-1~deb12u2", "3.0.22-1~deb12u2"),
			entries: openssl,
			want: facts{
				CVEs:    []string{"CVE-2026-35189", "CVE-2026-54872", "CVE-2026-75805", "CVE-2026-75806", "CVE-2026-77696", "CVE-2026-84782"},
				Urgency: "high", Released: time.Date(2026, 10, 21, 9, 54, 24, 0, time.UTC),
			},
		},
		{
			name:    "malformed changelog past the candidate's entry: the candidate's entry",
			c:       cand("tzdata", "tzdata", "2026e-0+deb12u1", "2026f-0+deb12u1", "2026f-0+deb12u1"),
			entries: tzdataBad, readErr: tzdataErr,
			want: facts{Urgency: "medium", Released: time.Date(2026, 10, 29, 10, 32, 16, 0, time.UTC)},
		},
		{
			name:    "malformed changelog before the candidate's entry",
			c:       cand("tzdata", "tzdata", "2026c-0+deb12u1", "2026e-0+deb12u1", "2026e-0+deb12u1"),
			entries: tzdataBad, readErr: tzdataErr,
			wantWhy: `line 20: trailer date "Friday, 23rd October 2026" is not an RFC 2822 date`,
		},
		{
			name:    "candidate not in its changelog",
			c:       cand("openssl", "openssl", "3.0.20-1~deb12u1", "3.0.23-1~deb12u1", "3.0.23-1~deb12u1"),
			entries: openssl,
			wantWhy: "the changelog has no entry for 3.0.23-1~deb12u1",
		},
		{
			name:    "changelog of another source package",
			c:       cand("libressl", "openssl", "3.0.20-1~deb12u1", "3.0.22-1~deb12u2", "3.0.22-1~deb12u2"),
			entries: openssl,
			wantWhy: "the changelog is of source openssl, not libressl",
		},
		{
			name:    "package without a changelog",
			c:       cand("linux-signed-amd64", "linux-image-amd64", "6.1.124-1", "6.1.128-1", "6.1.128+1"),
			readErr: errNoChangelog,
			wantWhy: "no changelog in the package",
		},
		{
			name:    "more CVE ids than a report may carry: the newest",
			c:       cand("big", "big", "0", "2", "2"),
			entries: many,
			want:    facts{CVEs: append(many[1].CVEs[200:], many[0].CVEs...), Released: time.Unix(2, 0).UTC()},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := facts{Installed: tc.c.update.InstalledVersion, SourcePackage: tc.c.source}
			got, why := factsFromEntries(base, tc.c, tc.entries, tc.readErr)
			if !strings.Contains(why, tc.wantWhy) || (why == "") != (tc.wantWhy == "") {
				t.Errorf("why = %q, want %q", why, tc.wantWhy)
			}
			tc.want.Installed, tc.want.SourcePackage = base.Installed, base.SourcePackage
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("facts (-want +got):\n%s", d)
			}
			if len(got.CVEs) > maxCVEs {
				t.Errorf("%d CVE ids, at most %d may be reported", len(got.CVEs), maxCVEs)
			}
		})
	}
}

func TestParseShow(t *testing.T) {
	ups := []*protocol.Update{
		{ID: "openssl@3.0.16-1~deb12u1", Name: "openssl", Version: "3.0.16-1~deb12u1"},
		{ID: "libssl3@3.0.16-1~deb12u1", Name: "libssl3", Version: "3.0.16-1~deb12u1"},
		{ID: "linux-image-amd64@6.1.128-1", Name: "linux-image-amd64", Version: "6.1.128-1"},
		{ID: "libgcc-s1:i386@12.2.0-14+deb12u1", Name: "libgcc-s1:i386", Version: "12.2.0-14+deb12u1"},
		{ID: "tzdata@2025a-0+deb12u1", Name: "tzdata", Version: "2025a-0+deb12u1"},
		{ID: "nginx@1.22.1-9", Name: "nginx", Version: "1.22.1-9"},
	}
	got, err := parseShow([]byte(runtest.File(t, "testdata", "show-bookworm.txt")), "amd64", ups)
	if err != nil {
		t.Fatal(err)
	}
	type short struct{ Pkg, Arch, Source, SourceVersion string }
	gotShort := map[string]short{}
	for id, c := range got {
		if c.update.ID != id || c.size <= 0 {
			t.Errorf("%s: update %s, size %d", id, c.update.ID, c.size)
		}
		gotShort[id] = short{c.pkg, c.arch, c.source, c.sourceVersion}
	}
	want := map[string]short{
		"openssl@3.0.16-1~deb12u1":         {"openssl", "amd64", "openssl", "3.0.16-1~deb12u1"},
		"libssl3@3.0.16-1~deb12u1":         {"libssl3", "amd64", "openssl", "3.0.16-1~deb12u1"},
		"linux-image-amd64@6.1.128-1":      {"linux-image-amd64", "amd64", "linux-signed-amd64", "6.1.128+1"},
		"libgcc-s1:i386@12.2.0-14+deb12u1": {"libgcc-s1", "i386", "gcc-12", "12.2.0-14+deb12u1"},
		"tzdata@2025a-0+deb12u1":           {"tzdata", "all", "tzdata", "2025a-0+deb12u1"},
	}
	if d := cmp.Diff(want, gotShort); d != "" {
		t.Errorf("candidates (-want +got):\n%s", d)
	}
	if _, err := parseShow([]byte("Package: openssl\nno colon here\n"), "amd64", ups); err == nil {
		t.Error("parseShow took a line that is no field")
	}
}

func TestReadDocs(t *testing.T) {
	apttest.RequireDpkgDeb(t)
	dir := t.TempDir()
	binNMU := apttest.Gzip(t, apttest.RealChangelog(t, "bash_5.2.15-2+b13.changelog.Debian.amd64.gz"))
	source := apttest.Gzip(t, apttest.RealChangelog(t, "bash_5.2.15-2+b13.changelog.Debian.gz"))
	tests := []struct {
		name        string
		deb         apttest.Deb
		wantEntries []string // versions
		wantErr     string
	}{
		{
			name: "binNMU: its own changelog, then the source's",
			deb: apttest.Deb{Package: "bash", Version: "5.2.15-2+b13", Arch: "amd64", Files: map[string][]byte{
				"usr/share/doc/bash/changelog.Debian.amd64.gz": binNMU, "usr/share/doc/bash/changelog.Debian.gz": source,
				"usr/share/doc/bash/changelog.gz": []byte("upstream's, not read"), "usr/share/doc/bash-doc/changelog.Debian.gz": []byte("another package's"),
			}},
			wantEntries: []string{"5.2.15-2+b13", "5.2.15-2", "5.2.15-1"},
		},
		{
			name: "native package: changelog.gz",
			deb: apttest.Deb{Package: "native", Version: "5.2.15-2", Files: map[string][]byte{
				"usr/share/doc/native/changelog.gz": source,
			}},
			wantEntries: []string{"5.2.15-2", "5.2.15-1"},
		},
		{
			name:    "doc directory is a symlink to a sibling's",
			deb:     apttest.Deb{Package: "openssh-server", Version: "1:9.2p1-2+deb12u5", Arch: "amd64", Symlinks: map[string]string{"usr/share/doc/openssh-server": "openssh-client"}},
			wantErr: "no changelog in the package",
		},
		{
			name: "changelog is a symlink",
			deb: apttest.Deb{Package: "libfoo-dev", Version: "1", Files: map[string][]byte{"usr/share/doc/libfoo1/changelog.Debian.gz": source},
				Symlinks: map[string]string{"usr/share/doc/libfoo-dev/changelog.Debian.gz": "../libfoo1/changelog.Debian.gz"}},
			wantErr: "no changelog in the package",
		},
		{
			name: "changelog is not gzipped",
			deb: apttest.Deb{Package: "broken", Version: "1", Files: map[string][]byte{
				"usr/share/doc/broken/changelog.Debian.gz": apttest.RealChangelog(t, "bash_5.2.15-2+b13.changelog.Debian.gz"),
			}},
			wantErr: "changelog.Debian.gz: gzip: invalid header",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arch := tc.deb.Arch
			if arch == "" {
				arch = "all"
			}
			d, err := readDocs(context.Background(), apttest.BuildDeb(t, dir, tc.deb), tc.deb.Package, arch)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := d.entries()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			var got []string
			for _, e := range entries[:min(len(entries), len(tc.wantEntries))] {
				got = append(got, e.Version)
			}
			if d := cmp.Diff(tc.wantEntries, got); d != "" {
				t.Errorf("newest entries (-want +got):\n%s", d)
			}
		})
	}

	t.Run("not a package", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.deb")
		if err := os.WriteFile(bad, []byte("!<arch>\ngarbage"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readDocs(context.Background(), bad, "bad", "all"); err == nil || !strings.Contains(err.Error(), "bad.deb") {
			t.Errorf("readDocs of garbage = %v, want an error naming the file", err)
		}
	})
	t.Run("changelog over the size limit", func(t *testing.T) {
		huge := make([]byte, maxChangelogGz+1)
		deb := apttest.BuildDeb(t, dir, apttest.Deb{Package: "huge", Version: "1", Files: map[string][]byte{"usr/share/doc/huge/changelog.Debian.gz": huge}})
		if _, err := readDocs(context.Background(), deb, "huge", "all"); err == nil || !strings.Contains(err.Error(), "more than the 4194304 a changelog may have") {
			t.Errorf("readDocs of a huge changelog = %v, want the size error", err)
		}
	})
}

// TestInventoryKeepsChangelogFacts: a second inventory downloads nothing
// it learned from; a failed download is tried again; the cache keeps the
// current upgrades only.
func TestInventoryKeepsChangelogFacts(t *testing.T) {
	apttest.RequireDpkgDeb(t)
	cache := t.TempDir()
	r := &runtest.Replay{T: t, Calls: append(apttest.ListCalls(t, "simulate-bookworm.txt"), apttest.BookwormChangelogs(t, cache)...)}
	var logs bytes.Buffer
	b := New(r, Options{CacheDir: cache, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	first, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="updates reported without changelog facts (CVEs, urgency, release time)" backend=apt count=3 updates="libgcc-s1:i386@12.2.0-14+deb12u1 linux-image-amd64@6.1.128-1 tzdata@2025a-0+deb12u1" err="cannot read the package: tzdata@2025a-0+deb12u1: apt-get download tzdata=2025a-0+deb12u1: exit status 100: E: Failed to fetch`) {
		t.Errorf("log does not name the updates without facts:\n%s", logs.String())
	}
	if left, _ := os.ReadDir(filepath.Join(cache, "download")); len(left) != 0 {
		t.Errorf("downloads left behind: %v", left)
	}

	ran := len(r.Ran())
	r.Calls = append(r.Calls, runtest.Call{Cmd: "apt-cache show tzdata=2025a-0+deb12u1", Stdout: runtest.File(t, "testdata", "show-bookworm.txt")})
	second, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"apt-get update -q", "dpkg --print-architecture", apttest.QueryCmd, "apt-get -s -q dist-upgrade",
		"apt-cache show tzdata=2025a-0+deb12u1",
		"env --chdir=" + filepath.Join(cache, "download", "tzdata@2025a-0+deb12u1") + " apt-get download -q tzdata=2025a-0+deb12u1"}
	if d := cmp.Diff(want, r.Ran()[ran:]); d != "" {
		t.Errorf("second inventory's commands (-want +got):\n%s", d)
	}
	if d := cmp.Diff(first, second); d != "" {
		t.Errorf("second inventory differs (-first +second):\n%s", d)
	}

	if got := cachedIDs(t, cache); !slices.Equal(got, []string{"libgcc-s1:i386@12.2.0-14+deb12u1", "libssl3@3.0.16-1~deb12u1", "linux-image-amd64@6.1.128-1",
		"openssh-client@1:9.2p1-2+deb12u5", "openssh-server@1:9.2p1-2+deb12u5", "openssl@3.0.16-1~deb12u1"}) {
		t.Errorf("cache holds %q", got)
	}
	r.Calls = apttest.ListCalls(t, "simulate-uptodate.txt")
	if _, err := b.Inventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := cachedIDs(t, cache); len(got) != 0 {
		t.Errorf("with nothing to upgrade the cache still holds %q", got)
	}
}

func cachedIDs(t *testing.T, cache string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cache, factsFile))
	if err != nil {
		t.Fatal(err)
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id := range c.Updates {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestFactsFromAptArchiveCache: a candidate apt already fetched is read
// from its archive cache, in the backend's root, without a download.
func TestFactsFromAptArchiveCache(t *testing.T) {
	apttest.RequireDpkgDeb(t)
	root := t.TempDir()
	archives := filepath.Join(root, "var", "cache", "apt", "archives")
	if err := os.MkdirAll(archives, 0o755); err != nil {
		t.Fatal(err)
	}
	apttest.BuildDeb(t, archives, apttest.Deb{Package: "openssh-client", Version: "1:9.2p1-2+deb12u5", Arch: "amd64",
		Files: map[string][]byte{"usr/share/doc/openssh-client/changelog.Debian.gz": apttest.Gzip(t, apttest.ChangelogAsOf(t, "openssh_epoch1-9.2p1-2+deb12u10.head.txt", "1:9.2p1-2+deb12u5"))}})
	r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: "apt-cache show openssh-client=1:9.2p1-2+deb12u5", Stdout: runtest.File(t, "testdata", "show-bookworm.txt")}}}
	u := &protocol.Update{ID: "openssh-client@1:9.2p1-2+deb12u5", Source: Source, Name: "openssh-client", Version: "1:9.2p1-2+deb12u5", InstalledVersion: "1:9.2p1-2+deb12u3", Category: "security"}
	b := New(r, Options{Root: root, Logger: slog.New(slog.DiscardHandler)})
	env, err := b.aptEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.addFacts(context.Background(), env, "amd64", []*protocol.Update{u}); err != nil {
		t.Fatal(err)
	}
	want := &protocol.Update{ID: u.ID, Source: Source, Name: u.Name, Version: u.Version, InstalledVersion: u.InstalledVersion, Category: "security",
		SourcePackage: "openssh", CVEs: []string{"CVE-2025-26465"}, Urgency: "medium", Released: time.Date(2025, 2, 14, 13, 6, 51, 0, time.UTC)}
	if d := cmp.Diff(want, u); d != "" {
		t.Errorf("update (-want +got):\n%s", d)
	}
	if env := r.Env(); len(env) != 1 || !slices.Equal(env[0], []string{"APT_CONFIG=" + filepath.Join(root, "etc", "apt", "patchline-root.conf")}) {
		t.Errorf("apt-cache ran with env %q, want the isolated root's", env)
	}
}
