package reconciler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/reconciler/store/postgres"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// writeStats are the store's write counters, whichever the store: each
// store counts its own way (sqlite.WriteStats, postgres.WriteStats), and
// these are what both count.
type writeStats struct {
	// Engine is "sqlite" or "postgres", the metrics' engine label.
	Engine string
	// Transactions is how many write transactions ran, Writes how many
	// writes they carried (SQLite groups writes; PostgreSQL runs a write
	// again after a deadlock, in a transaction of its own).
	Transactions, Writes int64
	// Busy is how long the writes took, summed.
	Busy time.Duration
}

// sqliteStats reads the SQLite store's counters.
func sqliteStats(db *sqlite.DB) func() writeStats {
	return func() writeStats {
		s := db.WriteStats()
		return writeStats{Engine: "sqlite", Transactions: s.Transactions, Writes: s.Writes, Busy: s.Busy}
	}
}

// postgresStats reads the PostgreSQL store's counters.
func postgresStats(db *postgres.DB) func() writeStats {
	return func() writeStats {
		s := db.WriteStats()
		return writeStats{Engine: "postgres", Transactions: s.Transactions, Writes: s.Writes, Busy: s.Busy}
	}
}

// registerStoreMetrics registers the store's write counters, read from
// stats, with reg:
//
//   - patchline_store_write_transactions_total
//   - patchline_store_writes_total
//   - patchline_store_writer_busy_seconds_total
//
// With SQLite the rate of the last is the share of time the store's
// single writer is busy: near 1, writes queue and every report, result
// and job waits. PostgreSQL runs writes side by side, so there it may
// pass 1; its rate over the writes' rate is a write's mean time. Each
// carries the label engine (sqlite or postgres), so an alert on the
// single writer's utilisation can leave PostgreSQL out.
func registerStoreMetrics(reg prometheus.Registerer, stats func() writeStats) {
	engine := prometheus.Labels{"engine": stats().Engine}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "patchline_store_write_transactions_total",
			ConstLabels: engine,
			Help:        "Write transactions the store committed or rolled back; with SQLite the writes that queue while one commits share the next, with PostgreSQL a write met by a deadlock runs again in another.",
		}, func() float64 { return float64(stats().Transactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "patchline_store_writes_total",
			ConstLabels: engine,
			Help:        "Writes (an enrollment, a report, a result, a plan's jobs...) the store's write transactions carried.",
		}, func() float64 { return float64(stats().Writes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "patchline_store_writer_busy_seconds_total",
			ConstLabels: engine,
			Help:        "Time the store's writes took, summed; with SQLite (one writer) its rate is the writer's utilisation.",
		}, func() float64 { return stats().Busy.Seconds() }),
	)
}
