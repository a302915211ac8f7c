package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"

	// database/sql's "sqlite" driver, to prepare a stopped store file.
	_ "modernc.org/sqlite"
)

// stop stops patchd as systemd does (SIGTERM) and waits until it exited,
// so its store is closed and checkpointed into its file.
func (p *patchdProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Fatal("patchd did not stop within 30s of SIGTERM")
	}
	p.cmd = nil
}

// runPatchd runs the patchd binary with args until it exits, and returns
// its exit code and output.
func runPatchd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	bin, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("run patchd: %v\n%s", err, out)
	}
	return 0, string(out)
}

// patchdArgs are the arguments startPatchd gives patchd, for a run that
// is expected to exit at once.
func patchdArgs(t *testing.T, repo *fleetRepo, dataDir string, extra ...string) []string {
	return append([]string{"serve", "--repo-dir", repo.dir, "--data-dir", dataDir, "--secrets", patchdtest.SecretsFile(t, enrollment),
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)
}

// saveBackup downloads a backup from patchd, as patchctl backup does.
func saveBackup(t *testing.T, base string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+patchdtest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %s, %v", resp.Status, err)
	}
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// damagePages vacuums the stopped store at path (so every page is in
// use: the last one is not a free page whose content nothing reads) and
// overwrites its middle and last pages with garbage, as a disk fault or
// a bad copy would.
func damagePages(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var pageSize int
	_, err = db.Exec("VACUUM")
	if err == nil {
		err = db.QueryRow("PRAGMA page_size").Scan(&pageSize)
	}
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("the stopped store kept a write-ahead log of %d bytes", fi.Size())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The header's count of free pages (offset 36, big-endian).
	if free := binary.BigEndian.Uint32(b[36:40]); free != 0 {
		t.Fatalf("the vacuumed store still has %d free pages", free)
	}
	n := len(b) / pageSize
	if n < 8 {
		t.Fatalf("the store has %d pages; the test wants more to damage", n)
	}
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, pageSize/4)
	for _, page := range []int{n / 2, n - 1} {
		copy(b[page*pageSize:], garbage)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("overwrote pages %d and %d of %d", n/2+1, n, n)
}

// TestDamagedStoreIsRefused: a store file damaged while patchd was
// stopped is caught by the check at start: patchd refuses to serve from
// it, exits 1, and names the commands that restore a backup; a backup
// restored with them starts as usual.
func TestDamagedStoreIsRefused(t *testing.T) {
	repo := newFleetRepo(t, "7d", approveNothing)
	dataDir := t.TempDir()
	p := startPatchd(t, repo, dataDir)
	agents := startSimAgents(t, p.base(), 4, 1, agentOptions{})
	waitEnrolled(t, p.base(), agents, 30*time.Second)
	backup := saveBackup(t, p.base())
	for _, a := range agents {
		a.stop(t)
	}
	p.stop()
	damagePages(t, filepath.Join(dataDir, "patchline.db"))

	code, out := runPatchd(t, patchdArgs(t, repo, dataDir)...)
	for _, want := range []string{"the store is damaged", "does not serve from a damaged store",
		"patchd restore FILE --data-dir " + dataDir, "patchctl backup"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("patchd on a damaged store exited %d, want 1:\n%s", code, out)
	}

	if code, out := runPatchd(t, "restore", backup, "--data-dir", dataDir); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	p.start()
	waitFor(t, "the restored store's endpoints", 30*time.Second, func() (bool, string) {
		n := len(snapshot(t, p.base()).Endpoints)
		return n == len(agents), fmt.Sprintf("%d endpoints", n)
	})
}

// TestMissingStoreBesideSigningKey: a data directory that holds the
// job-signing key had a store; with the store gone (or emptied) patchd
// refuses to start, saying to restore it or to pass --init-store, and
// --init-store starts with an empty store. A new data directory (no key,
// no store) starts as it always did.
func TestMissingStoreBesideSigningKey(t *testing.T) {
	repo := newFleetRepo(t, "7d", approveNothing)
	dataDir := t.TempDir()
	p := startPatchd(t, repo, dataDir)
	agents := startSimAgents(t, p.base(), 2, 1, agentOptions{})
	waitEnrolled(t, p.base(), agents, 30*time.Second)
	for _, a := range agents {
		a.stop(t)
	}
	p.stop()
	store := filepath.Join(dataDir, "patchline.db")

	const refusal = "this data directory had a store; restore it or pass --init-store to start empty"
	tests := []struct {
		name string
		lose func(t *testing.T)
	}{
		{"the store removed", func(t *testing.T) {
			for _, f := range []string{store, store + "-wal", store + "-shm"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"the store emptied", func(t *testing.T) {
			if err := os.WriteFile(store, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.lose(t)
			code, out := runPatchd(t, patchdArgs(t, repo, dataDir)...)
			if code != 1 || !strings.Contains(out, refusal) || !strings.Contains(out, "patchd restore FILE") {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 saying %q and naming patchd restore FILE", code, out, refusal)
			}
		})
	}

	p.args = append(p.args, "--init-store")
	p.start()
	waitRevision(t, p.base(), gittest.Run(t, repo.env, repo.dir, "rev-parse", "HEAD"))
	if n := len(snapshot(t, p.base()).Endpoints); n != 0 {
		t.Errorf("with --init-store: %d endpoints; want an empty store", n)
	}
	p.stop()
	// Once started, the new store is the store: no flag needed again.
	p.args = p.args[:len(p.args)-1]
	p.start()
}

// mountSmallDisk mounts a tmpfs of size on a new directory for the test
// and unmounts it when the test ends. It needs root: elsewhere the test
// is skipped, loudly, and under CI=true it fails.
func mountSmallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		gittest.SkipOrFail(t, "mounting a %s tmpfs to fill needs root (uid %d)", size, os.Geteuid())
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		gittest.SkipOrFail(t, "mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	// Registered after t.TempDir's removal, so it runs before it; and
	// before anything the test starts on the disk, so after it stopped.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4096, 1} {
		buf := bytes.Repeat([]byte{0xff}, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", dir, err)
				}
				break
			}
		}
	}
	return p
}

// metricsValue is the value of the exposition line of series at url.
func metricsValue(t *testing.T, url, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// readyz is GET /readyz at base: its status and body.
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFullDiskIsVisibleAndRecovers fills the disk under patchd's data
// directory (a small tmpfs) while agents report and a commit lands: the
// failed writes show within seconds in /v1/status, the metrics and
// /readyz, and the commit is pending; once space is freed, with no new
// commit or fetch, the pending revision is applied, patchd is ready
// again and the fleet converges.
func TestFullDiskIsVisibleAndRecovers(t *testing.T) {
	disk := mountSmallDisk(t, "16m")
	repo := newFleetRepo(t, "7d", approveNothing)
	dataDir := filepath.Join(disk, "data")
	metricsAddr := freeAddr(t)
	p := startPatchd(t, repo, dataDir, "--metrics-listen", metricsAddr)
	metricsBase := "http://" + metricsAddr
	agents := startSimAgents(t, p.base(), 4, 1, agentOptions{reportEvery: time.Second})
	waitEnrolled(t, p.base(), agents, 30*time.Second)
	if code, body := readyz(t, p.base()); code != 200 {
		t.Fatalf("/readyz before the disk fills: %d %s", code, body)
	}

	filler := fillDisk(t, disk)
	rev := repo.approve(approveSecurity)
	var st protocol.Status
	waitFor(t, "the full disk in the status", 20*time.Second, func() (bool, string) {
		st = status(t, p.base())
		return st.Store.Failing && st.Pending != nil && st.Pending.Revision == rev, fmt.Sprintf("store %+v, pending %+v", st.Store, st.Pending)
	})
	t.Logf("while the disk is full: store %+v; pending %+v", st.Store, st.Pending)
	if !strings.Contains(st.Store.LastError, "full") || !strings.Contains(st.Pending.Error, "could not record") {
		t.Errorf("status while the disk is full: store %+v, pending %+v; want the disk-full error and could not record", st.Store, st.Pending)
	}
	for _, base := range []string{p.base(), metricsBase} {
		if code, body := readyz(t, base); code != 503 || !strings.Contains(body, "the store's last write failed") {
			t.Errorf("%s/readyz while the disk is full: %d %q, want 503 with the reason", base, code, body)
		}
	}
	if v, ok := metricsValue(t, metricsBase+"/metrics", `patchline_store_errors_total{op="revision"}`); !ok || v < 1 {
		t.Errorf(`patchline_store_errors_total{op="revision"} = %v (%v), want at least 1`, v, ok)
	}
	if v, _ := metricsValue(t, metricsBase+"/metrics", "patchline_store_write_failing"); v != 1 {
		t.Errorf("patchline_store_write_failing = %v while the disk is full, want 1", v)
	}
	if applied(st, client) == rev {
		t.Errorf("revision %s applied while the disk is full", rev)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pending revision applied and the store ready", 30*time.Second, func() (bool, string) {
		st := status(t, p.base())
		code, body := readyz(t, p.base())
		return applied(st, client) == rev && st.Pending == nil && !st.Store.Failing && code == 200,
			fmt.Sprintf("applied %s, pending %+v, store %+v, readyz %d %s", applied(st, client), st.Pending, st.Store, code, body)
	})
	waitConverged(t, p.base(), rev, agents, time.Minute)
	if v, _ := metricsValue(t, metricsBase+"/metrics", "patchline_store_write_failing"); v != 0 {
		t.Errorf("patchline_store_write_failing = %v after recovery, want 0", v)
	}
	if st := status(t, p.base()); st.Store.RecoveredAt.IsZero() || st.Store.LastError == "" {
		t.Errorf("store after recovery: %+v, want the last error kept with the recovery time", st.Store)
	}
}
