package guard

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// startNamed runs a copy of sleep under name and stops it when the test
// ends.
func startNamed(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestRunningFindsARealProcess(t *testing.T) {
	startNamed(t, "patchline-guard-ehr")
	startNamed(t, "ZoomTest")
	got, err := Running(t.Context(), []string{"PatchLine-Guard-EHR", "zoomtest", "not-running-anywhere", "ZoomTest.exe"})
	if err != nil {
		t.Fatal(err)
	}
	// ZoomTest.exe matches only a Windows executable of that name.
	if d := cmp.Diff([]string{"PatchLine-Guard-EHR", "zoomtest"}, got); d != "" {
		t.Errorf("running (-want +got):\n%s", d)
	}
}

func TestMatch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "ps-macos.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		procs []string
		names []string
		want  []string
	}{
		{"macOS ps output, by base name and without case", parsePS(b), []string{"ZOOM.US", "EHR Client", "Zoom", "logd"}, []string{"ZOOM.US", "EHR Client", "logd"}},
		{"Windows names with and without .exe", []string{"System", "ehr.exe", "Zoom.exe"}, []string{"EHR.EXE", "zoom", "ehr.exe.exe"}, []string{"EHR.EXE", "zoom"}},
		{"a Linux comm cut at 15 bytes", []string{"patchline-guard"}, []string{"patchline-guard-ehr", "patchline-guar"}, []string{"patchline-guard-ehr"}},
		{"nothing to guard", []string{"sh"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, Match(tt.names, tt.procs)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
