package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/buildinfo"
)

// buildInfo is patchline_build_info: 1, labelled with the controller's
// version and the Go it was built with, so a dashboard can show (and
// join on) which patchd runs where.
func buildInfo() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "patchline_build_info",
		Help:        "Always 1; its labels are the version of this patchd and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version(), "goversion": runtime.Version()},
	}, func() float64 { return 1 })
}
