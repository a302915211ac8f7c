package apt

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/protocol"
)

// TestParsePolicy reads a real `apt-cache policy` (Debian 12; the mirror's
// host replaced): the installed version is only in dpkg's status file and
// cannot be fetched again, the others can.
func TestParsePolicy(t *testing.T) {
	out := runtest.File(t, "testdata", "policy-openssl-bookworm.txt")
	want := []string{"3.0.22-1~deb12u2", "3.0.20-1~deb12u2", "3.0.17-1~deb12u2"}
	if d := cmp.Diff(want, parsePolicy([]byte(out))); d != "" {
		t.Errorf("versions (-want +got):\n%s", d)
	}
	if got := parsePolicy([]byte("libfoo:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n")); len(got) != 0 {
		t.Errorf("empty table: %q", got)
	}
}

// TestRollbackRecorded replays a rollback of openssl on the recorded
// endpoint: the newest offered version older than the installed one is
// chosen, by dpkg's comparison.
func TestRollbackRecorded(t *testing.T) {
	query := "dpkg-query -W -f=${Version}\t${db:Status-Status} -- openssl"
	cmpv := func(a, b string, less bool) runtest.Call {
		c := runtest.Call{Cmd: "dpkg --compare-versions " + a + " lt " + b}
		if !less {
			c.Exit = 1
		}
		return c
	}
	downgraded := false
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: query, Stdout: "3.0.19-1~deb12u2\tinstalled", Effect: func() error { return nil }},
		{Cmd: "apt-cache policy -- openssl", Stdout: runtest.File(t, "testdata", "policy-openssl-bookworm.txt")},
		cmpv("3.0.22-1~deb12u2", "3.0.19-1~deb12u2", false),
		cmpv("3.0.20-1~deb12u2", "3.0.19-1~deb12u2", false),
		cmpv("3.0.17-1~deb12u2", "3.0.19-1~deb12u2", true),
		{Cmd: "apt-get install -y -q --allow-downgrades -o Dpkg::Options::=--force-confold -o APT::Cmd::Pattern-Only=true -- openssl=3.0.17-1~deb12u2",
			Stdout: "Setting up openssl (3.0.17-1~deb12u2) ...\n", Effect: func() error { downgraded = true; return nil }},
	}}
	// dpkg-query answers the installed version before and after.
	b := New(&versionAfter{Replay: r, query: query, after: &downgraded, version: "3.0.17-1~deb12u2"}, Options{CacheDir: t.TempDir()})
	got, err := b.Rollback(t.Context(), []*protocol.Update{{ID: "openssl@3.0.19-1~deb12u2", Source: Source, Name: "openssl", Version: "3.0.19-1~deb12u2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Succeeded || !strings.HasPrefix(got[0].Output, "rolled back openssl from 3.0.19-1~deb12u2 to 3.0.17-1~deb12u2") {
		t.Errorf("results = %+v", got)
	}
}

// versionAfter answers the dpkg-query of the installed version with
// version once after is set, and replays everything else.
type versionAfter struct {
	*runtest.Replay
	query   string
	after   *bool
	version string
}

func (v *versionAfter) Run(ctx context.Context, name string, args []string, env []string) ([]byte, []byte, error) {
	if *v.after && strings.Join(append([]string{name}, args...), " ") == v.query {
		return []byte(v.version + "\tinstalled"), nil, nil
	}
	return v.Replay.Run(ctx, name, args, env)
}

const rollbackPkg = "patchline-rollback-test"

// TestRealAptRollback builds throwaway packages 1.0 and 2.0, serves both
// from a local file repository, installs 2.0 over 1.0 in an isolated root
// through the backend, and rolls it back to 1.0.
func TestRealAptRollback(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, rollbackPkg) {
		t.Fatalf("host already has %s installed; remove it first", rollbackPkg)
	}
	root := apttest.RollbackRoot(t, rollbackPkg, "1.0", "1.0", "2.0")
	ctx := t.Context()
	b := New(run.Exec{}, Options{Root: root, CacheDir: t.TempDir(), Logger: testLogger(t)})
	inv, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var upgrade *protocol.Update
	for _, u := range inv {
		if u.Name == rollbackPkg && !u.Installed {
			upgrade = u
		}
	}
	if upgrade == nil || upgrade.Version != "2.0" {
		t.Fatalf("inventory offers no %s 2.0: %+v", rollbackPkg, inv)
	}
	if res, err := b.Install(ctx, []*protocol.Update{upgrade}); err != nil || !res[0].Succeeded {
		t.Fatalf("install 2.0: %+v, %v", res, err)
	}
	versionFile := filepath.Join(root, "opt", rollbackPkg, "version.txt")
	if got, _ := os.ReadFile(versionFile); string(got) != "2.0\n" {
		t.Fatalf("after install: %q", got)
	}

	res, err := b.Rollback(ctx, []*protocol.Update{{ID: rollbackPkg + "@2.0", Source: Source, Name: rollbackPkg, Version: "2.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Succeeded || !strings.HasPrefix(res[0].Output, "rolled back "+rollbackPkg+" from 2.0 to 1.0") {
		t.Fatalf("rollback = %+v", res)
	}
	if got, _ := os.ReadFile(versionFile); string(got) != "1.0\n" {
		t.Errorf("after rollback the root holds %q, want 1.0's file", got)
	}
	after, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range after {
		if u.Name == rollbackPkg && u.Installed && u.Version != "1.0" {
			t.Errorf("inventory after rollback: %+v installed", u)
		}
	}

	// Rolling the same version back again: it is no longer installed.
	res, err = b.Rollback(ctx, []*protocol.Update{{ID: rollbackPkg + "@2.0", Source: Source, Name: rollbackPkg, Version: "2.0"}})
	if err != nil || res[0].Succeeded || res[0].Error != "cannot roll back "+rollbackPkg+" 2.0: the installed version is 1.0" {
		t.Errorf("second rollback = %+v, %v", res, err)
	}
	if apttest.HostHas(t, rollbackPkg) {
		t.Errorf("the host's dpkg database now has %s: the backend escaped its root", rollbackPkg)
	}
}

// TestRealAptRollbackWithoutAnOlderVersion: 1.0-1 was installed from a
// file no source offers, so after the upgrade to 1.1-1 there is nothing to
// return to, until the older package file is in apt's cache.
func TestRealAptRollbackWithoutAnOlderVersion(t *testing.T) {
	apttest.Require(t)
	if apttest.HostHas(t, demoPkg) {
		t.Fatalf("host already has %s installed; remove it first", demoPkg)
	}
	root := apttest.Root(t, demoPkg)
	ctx := t.Context()
	b := New(run.Exec{}, Options{Root: root, CacheDir: t.TempDir(), Logger: testLogger(t)})
	if _, err := b.Inventory(ctx); err != nil {
		t.Fatal(err)
	}
	newer := &protocol.Update{ID: demoPkg + "@1.1-1", Source: Source, Name: demoPkg, Version: "1.1-1"}
	if res, err := b.Install(ctx, []*protocol.Update{newer}); err != nil || !res[0].Succeeded {
		t.Fatalf("install 1.1-1: %+v, %v", res, err)
	}
	res, err := b.Rollback(ctx, []*protocol.Update{newer})
	want := "cannot roll back " + demoPkg + " 1.1-1: no older version available in this endpoint's apt sources or cache"
	if err != nil || res[0].Succeeded || res[0].Error != want {
		t.Fatalf("rollback = %+v, %v; want %q", res, err, want)
	}

	apttest.BuildDeb(t, filepath.Join(root, "var", "cache", "apt", "archives"), apttest.Deb{Package: demoPkg, Version: "1.0-1",
		Files: map[string][]byte{"opt/" + demoPkg + "/hello.txt": []byte("hello from the cached 1.0-1\n")}})
	res, err = b.Rollback(ctx, []*protocol.Update{newer})
	if err != nil || !res[0].Succeeded {
		t.Fatalf("rollback from the cache = %+v, %v", res, err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "opt", demoPkg, "hello.txt")); string(got) != "hello from the cached 1.0-1\n" {
		t.Errorf("after rollback from the cache: %q", got)
	}
}
