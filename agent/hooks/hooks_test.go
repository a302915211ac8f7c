package hooks

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/proctest"
	"github.com/patchline/patchline/protocol"
)

func script(path, content string) *protocol.Script {
	sum := sha256.Sum256([]byte(content))
	return &protocol.Script{Path: path, Shell: protocol.ShellSh, Content: content, SHA256: hex.EncodeToString(sum[:])}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		script  *protocol.Script
		timeout time.Duration
		want    protocol.HookResult
	}{
		{name: "a script that succeeds", script: script("scripts/stop-ehr.sh", "echo stopping $PATCHLINE_HOOK\n"),
			want: protocol.HookResult{Hook: "pre", Path: "scripts/stop-ehr.sh", ExitCode: 0, Output: "stopping pre\n"}},
		{name: "a script that fails", script: script("scripts/stop-ehr.sh", "echo cannot stop >&2\nexit 3\n"),
			want: protocol.HookResult{Hook: "pre", Path: "scripts/stop-ehr.sh", ExitCode: 3, Error: "script scripts/stop-ehr.sh: exit status 3", Output: "cannot stop\n"}},
		{name: "content that differs from the signed hash is not run", script: func() *protocol.Script {
			s := script("scripts/stop-ehr.sh", "echo reviewed\n")
			s.Content = "echo changed after review; touch ran\n"
			return s
		}(), want: protocol.HookResult{Hook: "pre", Path: "scripts/stop-ehr.sh", ExitCode: -1, Error: "script scripts/stop-ehr.sh: script content does not match its signed hash"}},
		{name: "a PowerShell script is not run by sh", script: &protocol.Script{Path: "scripts/x.ps1", Shell: protocol.ShellPowerShell, Content: "", SHA256: hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }())},
			want: protocol.HookResult{Hook: "pre", Path: "scripts/x.ps1", ExitCode: -1, Error: "script scripts/x.ps1: a powershell script does not run on linux (PowerShell scripts run on Windows, sh scripts elsewhere)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			got := Run(t.Context(), "pre", tt.script, tt.timeout, dir, []string{"PATCHLINE_HOOK=pre"})
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left %v in the directory", left)
			}
			proctest.NoChildLeft(t)
		})
	}
}

// TestTimeoutKillsTheGroup runs a script that starts a child and waits: at
// the timeout both must be killed.
func TestTimeoutKillsTheGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	s := script("scripts/hang.sh", "sleep 300 &\necho $! > "+pidFile+"\necho started\nwait\n")
	got := Run(t.Context(), "post", s, 300*time.Millisecond, t.TempDir(), nil)
	if got.Error != "script scripts/hang.sh: timed out after 300ms; its processes were killed" || got.Output != "started\n" {
		t.Errorf("result = %+v", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// The child was re-parented when its shell died; it is gone, or a
	// zombie its new parent has not reaped yet.
	for range 50 {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			proctest.NoChildLeft(t)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the script's child %d still runs after the timeout", pid)
}

func TestOutputIsBounded(t *testing.T) {
	s := script("scripts/loud.sh", "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done\n")
	got := Run(t.Context(), "post", s, 0, t.TempDir(), nil)
	if got.Error != "" {
		t.Fatal(got.Error)
	}
	if !strings.HasPrefix(got.Output, "[") || !strings.HasSuffix(got.Output, "line 1999\n") || len(got.Output) > MaxOutput+64 {
		t.Errorf("output of %d bytes, starting %q", len(got.Output), got.Output[:40])
	}
}

func TestCommand(t *testing.T) {
	name, args, err := Command("windows", protocol.ShellPowerShell, `C:\ProgramData\Patchline\.hook-1\pre.ps1`)
	want := []string{"powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", `C:\ProgramData\Patchline\.hook-1\pre.ps1`}
	if err != nil || !cmp.Equal(want, append([]string{name}, args...)) {
		t.Errorf("windows: %s %q, %v", name, args, err)
	}
	if _, _, err := Command("windows", protocol.ShellSh, "x"); err == nil {
		t.Error("an sh script on windows was accepted")
	}
	if _, _, err := Command("darwin", "bash", "x"); err == nil || !strings.Contains(err.Error(), `unknown shell "bash"`) {
		t.Errorf("bash: %v", err)
	}
}
