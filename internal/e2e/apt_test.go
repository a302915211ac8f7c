package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/reconciler/state"
)

// aptPkg is the throwaway package this test builds; its name differs from
// the apt backend's own test package so both can run at once.
const aptPkg = "patchline-e2e-hello"

// requireRealApt fails under CI=true and skips loudly elsewhere when the
// real apt path cannot run.
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
		why = "missing " + strings.Join(missing, ", ") + " (run .ci/systools.sh)"
	case os.Geteuid() != 0:
		why = "not root: dpkg and apt-get need root even for an isolated root"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("real apt end-to-end test cannot run: %s", why)
	}
	t.Skipf("!!! SKIPPING the real apt end-to-end test: %s !!!", why)
}

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

// buildDeb builds aptPkg at version into dir and returns its path.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "pkg")
	writeFile(t, filepath.Join(tree, "DEBIAN", "control"), "Package: "+aptPkg+"\nVersion: "+version+
		"\nArchitecture: all\nMaintainer: Patchline tests <tests@patchline.invalid>\nDescription: throwaway package for the end-to-end apt test\n")
	writeFile(t, filepath.Join(tree, "opt", aptPkg, "hello.txt"), "hello from "+version+"\n")
	deb := filepath.Join(dir, aptPkg+"_"+version+"_all.deb")
	sh(t, "", "dpkg-deb", "--root-owner-group", "--build", tree, deb)
	return deb
}

// isolatedRoot makes a dpkg root with aptPkg 1.0-1 installed, whose only
// apt source is a local repository (a security suite) offering 1.1-1.
func isolatedRoot(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	old := buildDeb(t, work, "1.0-1")
	buildDeb(t, repo, "1.1-1")
	writeFile(t, filepath.Join(repo, "Packages"), string(sh(t, repo, "apt-ftparchive", "packages", ".")))
	writeFile(t, filepath.Join(repo, "Release"), string(sh(t, repo, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=Patchline-E2E",
		"-o", "APT::FTPArchive::Release::Suite=e2e-security", "release", ".")))
	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/apt/apt.conf.d", "etc/apt/sources.list.d",
		"etc/apt/preferences.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/log/apt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "var/lib/dpkg/status"), "")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb [trusted=yes] file:"+repo+" ./\n")
	sh(t, "", "dpkg", "--root="+root, "--install", old)
	return root
}

// TestRealAptThroughPatchd: an agent with the real apt backend, on an
// isolated dpkg root, enrolls with a real patchd whose fleet approves
// security updates. The job installs 1.1-1 for real, and the controller's
// state shows it installed.
func TestRealAptThroughPatchd(t *testing.T) {
	requireRealApt(t)
	root := isolatedRoot(t)
	repo := newFleetRepo(t, "7d", approveNothing)
	c := startController(t, controllerConfig(t, repo))

	ag, err := agent.New(agent.Config{
		Controller: c.base, Client: client, EnrollSecret: acmeSecret, StateDir: t.TempDir(),
		Hostname: "acme-deb-0001", OS: state.OS{Family: "linux", Version: "debian 12"}, Labels: map[string]string{"ring": "canary"},
		Backend:      apt.New(run.Exec{}, apt.Options{Root: root}),
		RetryWaitMin: 20 * time.Millisecond, RetryWaitMax: 500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	waitFor(t, "the endpoint enrolled", 60*time.Second, func() (bool, string) {
		return clientStatus(status(t, c.base), client).Endpoints == 1, ""
	})
	rev := repo.approve(approveSecurity)
	want := aptPkg + "@1.1-1"
	waitFor(t, want+" installed", 2*time.Minute, func() (bool, string) {
		cs := clientStatus(status(t, c.base), client)
		for _, ep := range snapshot(t, c.base).Endpoints {
			for _, u := range ep.Updates {
				if u.ID == want && u.Installed && len(u.Attempts) == 1 && u.Attempts[0].Result == state.ResultSucceeded {
					return cs.Revision == rev && cs.Compliant == 1, ""
				}
			}
		}
		return false, "not yet"
	})
	if got, err := os.ReadFile(filepath.Join(root, "opt", aptPkg, "hello.txt")); err != nil || string(got) != "hello from 1.1-1\n" {
		t.Errorf("file in the isolated root = %q, %v; want the 1.1-1 content", got, err)
	}
	if _, err := os.Stat(filepath.Join("/opt", aptPkg)); err == nil {
		t.Errorf("/opt/%s exists on the host: the backend escaped its root", aptPkg)
	}
}
