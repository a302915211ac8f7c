package packaging

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRenderUnit(t *testing.T) {
	tests := []struct {
		name, src, want, err string
	}{
		{
			name: "flags moved to the config file: the path changes, the subcommand stays",
			src:  "[Service]\nType=exec\nExecStart=/usr/local/bin/patchd serve\nRestart=on-failure\n",
			want: "[Service]\nType=exec\nExecStart=/usr/bin/patchd serve\nRestart=on-failure\n",
		},
		{
			name: "arguments after the subcommand are kept",
			src:  "ExecStart=/usr/local/bin/patchd serve \\\n    --log-format json\nUser=patchd\n",
			want: "ExecStart=/usr/bin/patchd serve --log-format json\nUser=patchd\n",
		},
		{
			name: "the old unit with flags and no subcommand gets the subcommand alone",
			src:  "[Service]\nExecStart=/usr/local/bin/patchd \\\n    --repo https://git.msp.example/msp/fleet.git \\\n    --data-dir /var/lib/patchd\n# SIGTERM drains\nRestart=on-failure\n",
			want: "[Service]\nExecStart=/usr/bin/patchd serve\n# SIGTERM drains\nRestart=on-failure\n",
		},
		{name: "no ExecStart", src: "[Service]\nType=exec\n", err: "patchd.service: no ExecStart line"},
		{name: "another binary", src: "ExecStart=/usr/bin/patch-agent run\n", err: "patchd.service:1: ExecStart runs /usr/bin/patch-agent, want patchd"},
		{name: "two ExecStart lines", src: "ExecStart=/usr/bin/patchd serve\nExecStart=/usr/bin/patchd serve\n", err: "patchd.service:2: a second ExecStart"},
		{name: "a prefix", src: "ExecStart=-/usr/bin/patchd serve\n", err: "starts with a prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderUnit("patchd.service", []byte(tc.src), "/usr/bin/patchd", "serve")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, string(got)); d != "" {
				t.Errorf("unit (-want +got):\n%s", d)
			}
		})
	}
}

// TestRenderUnitExamples renders the units the packages ship.
func TestRenderUnitExamples(t *testing.T) {
	for _, p := range linuxPackages {
		src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/systemd", p.Unit()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := RenderUnit(p.Unit(), src, "/usr/bin/"+p.Name, p.Sub)
		if err != nil {
			t.Fatal(err)
		}
		if want := "\nExecStart=/usr/bin/" + p.Name + " " + p.Sub; !strings.Contains(string(got), want) {
			t.Errorf("%s rendered has no %q:\n%s", p.Unit(), want[1:], got)
		}
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in   string
		want []Target
		err  string
	}{
		{in: "linux/amd64 linux/arm64", want: []Target{{"linux", "amd64"}, {"linux", "arm64"}}},
		{in: "darwin/arm64,windows/amd64", want: []Target{{"darwin", "arm64"}, {"windows", "amd64"}}},
		{in: "windows/arm64", err: `target "windows/arm64": want one of`},
		{in: "linux", err: `target "linux": want one of`},
		{in: " ", err: "no target given"},
	}
	for _, tc := range tests {
		got, err := ParseTargets(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTargets(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("ParseTargets(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"0.9.0": true, "1.4.2": true, "1.0.0-rc1": true, "10.2": true,
		"": false, "v1.0.0": false, "devel": false, "1.0.0-": false, "1.0 0": false, "1.0.0-RC1": false, "1.0.0_1": false,
	} {
		if got := validVersion(v); got != want {
			t.Errorf("validVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestWrap(t *testing.T) {
	got := wrap("patchd follows a fleet repository of patch policy in Git, plans which updates each endpoint installs", 40)
	want := "patchd follows a fleet repository of\npatch policy in Git, plans which updates\neach endpoint installs"
	if got != want {
		t.Errorf("wrap =\n%s\nwant\n%s", got, want)
	}
}

// TestBuildArchives builds the macOS and Windows archives from stand-in
// binaries and reads them back: names, the files in their top
// directory, modes, and the time stamp.
func TestBuildArchives(t *testing.T) {
	bins := t.TempDir()
	for name, content := range map[string]string{
		"darwin_arm64/patch-agent":      "darwin arm64 binary",
		"windows_amd64/patch-agent.exe": "windows binary",
	} {
		writeFile(t, filepath.Join(bins, name), content, 0o755)
	}
	out := t.TempDir()
	stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	written, err := Build(Options{Root: repoRoot(t), BinDir: bins, OutDir: out, Version: "v0.9.0", Time: stamp,
		Targets: []Target{{"darwin", "arm64"}, {"windows", "amd64"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{filepath.Join(out, "patch-agent_0.9.0_darwin_arm64.tar.gz"), filepath.Join(out, "patch-agent_0.9.0_windows_amd64.zip")}
	if d := cmp.Diff(wantPaths, written); d != "" {
		t.Fatalf("written (-want +got):\n%s", d)
	}
	install, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging/install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ps1, err := os.ReadFile(filepath.Join(repoRoot(t), "packaging/install.ps1"))
	if err != nil {
		t.Fatal(err)
	}

	type entry struct {
		Mode    fs.FileMode
		Content string
	}
	tarEntries := map[string]entry{}
	f, err := os.Open(written[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		tarEntries[h.Name] = entry{fs.FileMode(h.Mode), string(b)}
		if !h.ModTime.Equal(stamp) || h.Uid != 0 {
			t.Errorf("%s: time %v, uid %d; want %v and root", h.Name, h.ModTime, h.Uid, stamp)
		}
	}
	top := "patch-agent_0.9.0_darwin_arm64/"
	if d := cmp.Diff(map[string]entry{
		top:                 {0o755, ""},
		top + "patch-agent": {0o755, "darwin arm64 binary"},
		top + "install.sh":  {0o755, string(install)},
	}, tarEntries); d != "" {
		t.Errorf("macOS archive (-want +got):\n%s", d)
	}

	zipEntries := map[string]entry{}
	r, err := zip.OpenReader(written[1])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, zf := range r.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		zipEntries[zf.Name] = entry{zf.Mode().Perm(), string(b)}
	}
	top = "patch-agent_0.9.0_windows_amd64/"
	if d := cmp.Diff(map[string]entry{
		top + "patch-agent.exe": {0o755, "windows binary"},
		top + "install.ps1":     {0o644, string(ps1)},
	}, zipEntries); d != "" {
		t.Errorf("Windows archive (-want +got):\n%s", d)
	}
}

func TestBuildRefuses(t *testing.T) {
	stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"a version that is not a release's", Options{Version: "devel", Time: stamp}, `version "devel": want a release version`},
		{"no time", Options{Version: "0.9.0"}, "no time given"},
		{"a missing binary", Options{Version: "0.9.0", Time: stamp, BinDir: t.TempDir(), Targets: []Target{{"linux", "amd64"}}},
			"linux/amd64: binary patchd: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Root = repoRoot(t)
			tc.opts.OutDir = t.TempDir()
			if _, err := Build(tc.opts); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Build error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// repoRoot is the repository's root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func writeFile(t testing.TB, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
