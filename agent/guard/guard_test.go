package guard

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/proctest"
)

func TestRunningFindsARealProcess(t *testing.T) {
	proctest.StartNamed(t, "patchline-guard-ehr")
	proctest.StartNamed(t, "ZoomTest")
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
