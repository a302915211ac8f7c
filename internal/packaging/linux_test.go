package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLinuxPackages builds the real binaries (linux/amd64, as make
// package does, once) and their .deb and .rpm, then checks them with the
// tools a distribution would: lintian and rpmlint find no error, dpkg
// installs the .debs into a throwaway root (maintainer scripts run with
// DPKG_ROOT, changing only that root) with the files, modes, owners,
// user, enabled units and conffiles in place, and rpm lists the .rpms'
// files and config files.
func TestLinuxPackages(t *testing.T) {
	require(t, false, "go")
	root := repoRoot(t)
	bins := t.TempDir()
	// mkpkg, as make package runs it: a child process, so the race
	// detector of this test does not slow compressing the binaries tenfold.
	tools := t.TempDir()
	build := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command("go", append([]string{"build", "-trimpath"}, args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	build([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}, "-ldflags", "-s -w -X github.com/patchline/patchline/internal/buildinfo.version=0.9.0",
		"-o", filepath.Join(bins, "linux_amd64")+"/", "./cmd/patchd", "./cmd/patch-agent")
	build(nil, "-o", tools+"/", "./internal/packaging/cmd/mkpkg")
	out := t.TempDir()
	listing, err := run(t, root, nil, filepath.Join(tools, "mkpkg"), "-bin", bins, "-out", out, "-version", "0.9.0",
		"-time", "1767225600", "-targets", "linux/amd64")
	if err != nil {
		t.Fatalf("mkpkg: %v\n%s", err, listing)
	}
	written := strings.Fields(listing)
	pkgs := map[string]string{}
	for _, p := range written {
		pkgs[filepath.Base(p)] = p
	}
	for _, name := range []string{"patchd_0.9.0-1_amd64.deb", "patch-agent_0.9.0-1_amd64.deb", "patchd-0.9.0-1.x86_64.rpm", "patch-agent-0.9.0-1.x86_64.rpm"} {
		if pkgs[name] == "" {
			t.Fatalf("Build wrote %v, not %s", written, name)
		}
	}
	debs := []string{pkgs["patchd_0.9.0-1_amd64.deb"], pkgs["patch-agent_0.9.0-1_amd64.deb"]}
	rpms := []string{pkgs["patchd-0.9.0-1.x86_64.rpm"], pkgs["patch-agent-0.9.0-1.x86_64.rpm"]}

	t.Run("lintian", func(t *testing.T) {
		require(t, false, "lintian")
		out, err := run(t, "", nil, "lintian", append([]string{"--fail-on", "error", "--pedantic", "--tag-display-limit", "0"}, debs...)...)
		t.Logf("lintian:\n%s", out)
		if err != nil || regexp.MustCompile(`(?m)^E: `).MatchString(out) {
			t.Errorf("lintian found errors (%v)", err)
		}
	})

	t.Run("rpmlint", func(t *testing.T) {
		require(t, false, "rpmlint", "cpio")
		// rpmlint unpacks with `rpm2cpio | cpio -id`, and the payload
		// nfpm writes names files from the root (/usr/bin/patchd): a cpio
		// that keeps absolute names would write them onto this machine.
		wrap := t.TempDir()
		cpio, err := exec.LookPath("cpio")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(wrap, "cpio"), "#!/bin/sh\nexec "+cpio+" --no-absolute-filenames \"$@\"\n", 0o755)
		before := hostState(t)
		out, err := run(t, t.TempDir(), []string{"PATH=" + wrap + ":" + os.Getenv("PATH")},
			"rpmlint", append([]string{"-r", filepath.Join(root, "packaging/rpmlintrc")}, rpms...)...)
		t.Logf("rpmlint:\n%s", out)
		if err != nil || !strings.Contains(out, " 0 errors,") {
			t.Errorf("rpmlint found errors (%v)", err)
		}
		if after := hostState(t); after != before {
			t.Errorf("rpmlint changed this machine:\nbefore: %s\nafter:  %s", before, after)
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		require(t, false, "shellcheck", "dpkg-deb")
		for _, deb := range debs {
			dir := t.TempDir()
			if out, err := run(t, "", nil, "dpkg-deb", "--control", deb, dir); err != nil {
				t.Fatalf("dpkg-deb --control: %v\n%s", err, out)
			}
			scripts, _ := filepath.Glob(filepath.Join(dir, "*inst"))
			more, _ := filepath.Glob(filepath.Join(dir, "*rm"))
			if out, err := run(t, "", nil, "shellcheck", append(scripts, more...)...); err != nil {
				t.Errorf("shellcheck %s's scripts: %v\n%s", filepath.Base(deb), err, out)
			}
		}
		if out, err := run(t, "", nil, "shellcheck", filepath.Join(root, "packaging/install.sh")); err != nil {
			t.Errorf("shellcheck packaging/install.sh: %v\n%s", err, out)
		}
	})

	t.Run("dpkg into a throwaway root", func(t *testing.T) {
		require(t, true, "dpkg", "dpkg-query", "systemd-sysusers", "systemd-tmpfiles", "systemctl")
		before := hostState(t)
		r := filepath.Join(t.TempDir(), "root")
		for _, d := range []string{"etc", "var/lib/dpkg/info", "var/lib/dpkg/updates"} {
			if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, filepath.Join(r, "var/lib/dpkg/status"), "", 0o644)
		writeFile(t, filepath.Join(r, "var/lib/dpkg/available"), "", 0o644)
		dpkg := func(args ...string) {
			t.Helper()
			// Chrootless: the scripts run here with DPKG_ROOT set, and
			// change that root only (the root has no shell to chroot to).
			args = append([]string{"--root=" + r, "--force-script-chrootless", "--log=/dev/null"}, args...)
			if out, err := run(t, "", []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, "dpkg", args...); err != nil {
				t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		dpkg(append([]string{"--install"}, debs...)...)

		passwd, err := os.ReadFile(filepath.Join(r, "etc/passwd"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^patchd:x:(\d+):(\d+):[^:]*:(.*)$`).FindStringSubmatch(string(passwd))
		if m == nil {
			t.Fatalf("no patchd user in the root's /etc/passwd:\n%s", passwd)
		}
		if want := "/var/lib/patchd:/usr/sbin/nologin"; m[3] != want {
			t.Errorf("patchd's home and shell: %s, want %s", m[3], want)
		}
		patchd := m[1] + ":" + m[2]

		type file struct{ Mode, Owner, Link string }
		want := map[string]file{
			"usr/bin/patchd":                                                 {"-rwxr-xr-x", "0:0", ""},
			"usr/bin/patch-agent":                                            {"-rwxr-xr-x", "0:0", ""},
			"usr/lib/systemd/system/patchd.service":                          {"-rw-r--r--", "0:0", ""},
			"usr/lib/systemd/system/patch-agent.service":                     {"-rw-r--r--", "0:0", ""},
			"etc/patchline/patchd.yaml":                                      {"-rw-r--r--", "0:0", ""},
			"etc/patch-agent/agent.yaml":                                     {"-rw-r--r--", "0:0", ""},
			"usr/lib/sysusers.d/patchd.conf":                                 {"-rw-r--r--", "0:0", ""},
			"usr/lib/tmpfiles.d/patchd.conf":                                 {"-rw-r--r--", "0:0", ""},
			"usr/lib/tmpfiles.d/patch-agent.conf":                            {"-rw-r--r--", "0:0", ""},
			"usr/share/doc/patchd/copyright":                                 {"-rw-r--r--", "0:0", ""},
			"usr/share/doc/patchd/changelog.Debian.gz":                       {"-rw-r--r--", "0:0", ""},
			"usr/share/doc/patch-agent/copyright":                            {"-rw-r--r--", "0:0", ""},
			"usr/share/doc/patch-agent/changelog.Debian.gz":                  {"-rw-r--r--", "0:0", ""},
			"var/lib/patchd":                                                 {"drwx------", patchd, ""},
			"var/lib/patch-agent":                                            {"drwx------", "0:0", ""},
			"etc/systemd/system/multi-user.target.wants/patchd.service":      {"Lrwxrwxrwx", "0:0", "/usr/lib/systemd/system/patchd.service"},
			"etc/systemd/system/multi-user.target.wants/patch-agent.service": {"Lrwxrwxrwx", "0:0", "/usr/lib/systemd/system/patch-agent.service"},
		}
		got := map[string]file{}
		for p := range want {
			fi, err := os.Lstat(filepath.Join(r, p))
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			f := file{Mode: fi.Mode().String(), Owner: strconv.FormatUint(uint64(st.Uid), 10) + ":" + strconv.FormatUint(uint64(st.Gid), 10)}
			if fi.Mode()&os.ModeSymlink != 0 {
				f.Link, _ = os.Readlink(filepath.Join(r, p))
			}
			got[p] = f
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("files in the root (-want +got):\n%s", d)
		}
		for name, sub := range map[string]string{"patchd": "serve", "patch-agent": "run"} {
			unit, _ := os.ReadFile(filepath.Join(r, "usr/lib/systemd/system", name+".service"))
			if !strings.Contains(string(unit), "\nExecStart=/usr/bin/"+name+" "+sub) {
				t.Errorf("%s.service does not run /usr/bin/%s %s:\n%s", name, name, sub, unit)
			}
		}

		query := func(pkg, format string) string {
			out, err := run(t, "", nil, "dpkg-query", "--admindir="+filepath.Join(r, "var/lib/dpkg"), "-W", "-f="+format, pkg)
			if err != nil {
				t.Fatalf("dpkg-query %s: %v\n%s", pkg, err, out)
			}
			return out
		}
		for pkg, conf := range map[string]string{"patchd": "/etc/patchline/patchd.yaml", "patch-agent": "/etc/patch-agent/agent.yaml"} {
			if got := query(pkg, "${Version} ${db:Status-Status}"); got != "0.9.0-1 installed" {
				t.Errorf("%s in the root: %q, want 0.9.0-1 installed", pkg, got)
			}
			if got := query(pkg, "${Conffiles}"); !regexp.MustCompile(`^ ` + regexp.QuoteMeta(conf) + ` [0-9a-f]{32}\n?$`).MatchString(got) {
				t.Errorf("%s's conffiles: %q, want %s alone", pkg, got, conf)
			}
		}

		// Removal disables the unit and keeps the configuration.
		dpkg("--remove", "patchd")
		for _, p := range []string{"usr/bin/patchd", "usr/lib/systemd/system/patchd.service", "etc/systemd/system/multi-user.target.wants/patchd.service"} {
			if _, err := os.Lstat(filepath.Join(r, p)); err == nil {
				t.Errorf("%s is still in the root after dpkg --remove patchd", p)
			}
		}
		if _, err := os.Stat(filepath.Join(r, "etc/patchline/patchd.yaml")); err != nil {
			t.Errorf("the configuration went with dpkg --remove: %v", err)
		}
		if after := hostState(t); after != before {
			t.Errorf("installing into the root changed this machine:\nbefore: %s\nafter:  %s", before, after)
		}
	})

	t.Run("rpm listing", func(t *testing.T) {
		require(t, false, "rpm")
		for _, tc := range []struct {
			rpm          string
			files        string
			config       string
			scriptsHave  []string
			scriptsCount int
		}{
			{rpms[0], `/etc/patchline/patchd.yaml -rw-r--r-- root root
/usr/bin/patchd -rwxr-xr-x root root
/usr/lib/systemd/system/patchd.service -rw-r--r-- root root
/usr/lib/sysusers.d/patchd.conf -rw-r--r-- root root
/usr/lib/tmpfiles.d/patchd.conf -rw-r--r-- root root
/usr/share/licenses/patchd/copyright -rw-r--r-- root root
`, "/etc/patchline/patchd.yaml\n", []string{"systemd-sysusers", "systemd-tmpfiles", "systemctl ${root:+--root=\"$root\"} enable patchd.service"}, 4},
			{rpms[1], `/etc/patch-agent/agent.yaml -rw-r--r-- root root
/usr/bin/patch-agent -rwxr-xr-x root root
/usr/lib/systemd/system/patch-agent.service -rw-r--r-- root root
/usr/lib/tmpfiles.d/patch-agent.conf -rw-r--r-- root root
/usr/share/licenses/patch-agent/copyright -rw-r--r-- root root
`, "/etc/patch-agent/agent.yaml\n", []string{"systemd-tmpfiles", "systemctl ${root:+--root=\"$root\"} enable patch-agent.service"}, 3},
		} {
			files, err := run(t, "", nil, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME}\n]", tc.rpm)
			if err != nil {
				t.Fatalf("rpm -qp %s: %v\n%s", tc.rpm, err, files)
			}
			if d := cmp.Diff(tc.files, files); d != "" {
				t.Errorf("%s's files (-want +got):\n%s", filepath.Base(tc.rpm), d)
			}
			if config, _ := run(t, "", nil, "rpm", "-qcp", tc.rpm); config != tc.config {
				t.Errorf("%s's config files: %q, want %q", filepath.Base(tc.rpm), config, tc.config)
			}
			// %config(noreplace): an edited file survives an upgrade.
			if flags, _ := run(t, "", nil, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", tc.rpm); !strings.Contains(flags, strings.TrimSpace(tc.config)+" cn") {
				t.Errorf("%s: the config file is not %%config(noreplace):\n%s", filepath.Base(tc.rpm), flags)
			}
			scripts, _ := run(t, "", nil, "rpm", "-qp", "--scripts", tc.rpm)
			for _, s := range tc.scriptsHave {
				if !strings.Contains(scripts, s) {
					t.Errorf("%s's scripts lack %q:\n%s", filepath.Base(tc.rpm), s, scripts)
				}
			}
			if n := strings.Count(scripts, "scriptlet (using /bin/sh)"); n != tc.scriptsCount {
				t.Errorf("%s has %d scriptlets, want %d:\n%s", filepath.Base(tc.rpm), n, tc.scriptsCount, scripts)
			}
		}
	})
}

// hostState describes what the packages would change on this machine if
// a tool escaped its root: the patchd user and the installed files.
func hostState(t testing.TB) string {
	t.Helper()
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("patchd user: ")
	b.WriteString(strings.Join(regexp.MustCompile(`(?m)^patchd:.*$`).FindAllString(string(passwd), -1), ","))
	for _, p := range []string{"/usr/bin/patchd", "/usr/bin/patch-agent", "/usr/lib/systemd/system/patchd.service",
		"/usr/lib/systemd/system/patch-agent.service", "/etc/patchline/patchd.yaml", "/etc/patch-agent/agent.yaml",
		"/etc/systemd/system/multi-user.target.wants/patchd.service"} {
		if fi, err := os.Lstat(p); err == nil {
			b.WriteString("; " + p + " " + fi.ModTime().String())
		}
	}
	return b.String()
}

// require fails the test under CI=true, and skips it loudly elsewhere,
// when a tool it needs is missing (or, with root, when not root). The
// Debian packages come from .ci/systools.sh.
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
		why = "missing " + strings.Join(missing, ", ") + " (run .ci/systools.sh)"
	case root && os.Geteuid() != 0:
		why = "not root: dpkg sets owners even in a throwaway root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot check the packages: %s", why)
	}
	t.Skipf("!!! SKIPPING a package check: %s !!!", why)
}

// run runs a command with env added and returns its combined output.
func run(t testing.TB, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}
