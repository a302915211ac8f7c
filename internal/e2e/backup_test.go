package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/patchdtest"
)

// TestBackupAndRestore takes a backup from a running patchd, then enrolls
// one more agent and rolls security updates out, then restores the backup
// with the real binary: refused while patchd runs (the data directory is
// locked), done once it is stopped. The restarted patchd has the endpoints
// of the backup and not the one enrolled after it, and although its job
// numbers are behind the agents', a rollout of every update converges in
// the same window: the agents refuse the first jobs, say how far they are,
// and get new ones.
func TestBackupAndRestore(t *testing.T) {
	bin, _ := binaries(t)
	repo := newFleetRepo(t, "7d", approveNothing)
	dataDir := t.TempDir()
	p := startPatchd(t, repo, dataDir)
	early := startSimAgents(t, p.base(), 2, 1, agentOptions{})
	waitEnrolled(t, p.base(), early, 30*time.Second)

	req, err := http.NewRequest(http.MethodGet, p.base()+"/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+patchdtest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("backup: %s, %v", resp.Status, err)
	}
	backup := filepath.Join(t.TempDir(), "patchline.db")
	if err := os.WriteFile(backup, body, 0o600); err != nil {
		t.Fatal(err)
	}

	late := startAgent(t, p.base(), "acme-broad-late", "broad", agentOptions{})
	waitEnrolled(t, p.base(), append(early, late), 30*time.Second)
	rev := repo.approve(approveSecurity)
	waitConverged(t, p.base(), rev, append(early, late), time.Minute)

	restore := func() (int, string) {
		out, err := exec.Command(bin, "restore", backup, "--data-dir", dataDir).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := restore(); code == 0 || !strings.Contains(out, "another patchd is using this data directory") {
		t.Fatalf("restore under a running patchd: exit %d: %s", code, out)
	}
	late.stop(t)
	p.kill()
	if code, out := restore(); code != 0 || !strings.Contains(out, "kept as") {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	// Updates the agents still miss, so the first jobs after the restore
	// carry work that must not wait for the next window.
	rev = repo.approve(`[{name: "all", category: ["security", "critical", "bugfix", "feature", "driver"]}]`)
	p.start()
	snap := snapshot(t, p.base())
	var ids []string
	for _, e := range snap.Endpoints {
		ids = append(ids, e.Hostname)
	}
	if len(ids) != len(early) || strings.Contains(strings.Join(ids, " "), "late") {
		t.Errorf("restored controller has endpoints %v, want the %d of the backup", ids, len(early))
	}
	waitConverged(t, p.base(), rev, early, time.Minute)
	refused := 0
	for _, e := range snapshot(t, p.base()).Endpoints {
		for _, u := range e.Updates {
			for _, a := range u.Attempts {
				if a.Result == "refused" && strings.Contains(a.Error, "not above") {
					refused++
				}
			}
		}
	}
	if refused == 0 {
		t.Error("no job was refused for its number after the restore: the test did not exercise what it should")
	}
}
