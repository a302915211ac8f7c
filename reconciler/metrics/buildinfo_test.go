package metrics

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/internal/buildinfo"
)

// TestBuildInfo: patchline_build_info is 1, labelled with the version
// `patchd version` prints and the Go version.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	want := `# HELP patchline_build_info Always 1; its labels are the version of this patchd and the Go version it was built with.
# TYPE patchline_build_info gauge
patchline_build_info{goversion="` + runtime.Version() + `",version="` + buildinfo.Version() + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "patchline_build_info"); err != nil {
		t.Error(err)
	}
}
