package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// writeStatser is the store's side of the store metrics.
type writeStatser interface {
	WriteStats() sqlite.WriteStats
}

// registerStoreMetrics registers the store's write counters with reg:
//
//   - patchline_store_write_transactions_total
//   - patchline_store_writes_total
//   - patchline_store_writer_busy_seconds_total
//
// The rate of the last is the share of time the store's single writer is
// busy: near 1, writes queue and every report, result and job waits.
func registerStoreMetrics(reg prometheus.Registerer, s writeStatser) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchline_store_write_transactions_total",
			Help: "Write transactions the store committed or rolled back; the writes that queue while one commits share the next.",
		}, func() float64 { return float64(s.WriteStats().Transactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchline_store_writes_total",
			Help: "Writes (an enrollment, a report, a result, a plan's jobs...) the store's write transactions carried.",
		}, func() float64 { return float64(s.WriteStats().Writes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchline_store_writer_busy_seconds_total",
			Help: "Time the store's single writer spent running write transactions; its rate is the writer's utilisation.",
		}, func() float64 { return s.WriteStats().Busy.Seconds() }),
	)
}
