package metrics

import "github.com/prometheus/client_golang/prometheus"

// Store are the collectors of the store's health:
//
//   - patchline_store_errors_total{op}: writes to the store that failed
//     (a full disk, an I/O error), by what the write was
//   - patchline_store_write_failing: 1 while the last write failed and
//     none has succeeded since
//
// op is one of a fixed set of names (enroll, report, result, jobs,
// lease, revision, audit), never an id.
type Store struct {
	errors  *prometheus.CounterVec
	failing prometheus.Gauge
}

// NewStore registers the store's health collectors with reg; every op of
// ops counts from zero at once, so that increase() sees the first error.
func NewStore(reg prometheus.Registerer, ops []string) *Store {
	s := &Store{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchline_store_errors_total",
			Help: "Writes to the store that failed (a full disk, an I/O error), by operation: enroll, report, result, jobs, lease, revision, audit.",
		}, []string{"op"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patchline_store_write_failing",
			Help: "1 while the store's last write failed and none has succeeded since (GET /readyz answers 503), else 0.",
		}),
	}
	reg.MustRegister(s.errors, s.failing)
	for _, op := range ops {
		s.errors.WithLabelValues(op)
	}
	return s
}

// WriteFailed counts a failed write of op and marks the store failing.
func (s *Store) WriteFailed(op string) {
	s.errors.WithLabelValues(op).Inc()
	s.failing.Set(1)
}

// Recovered marks the store as taking writes again.
func (s *Store) Recovered() { s.failing.Set(0) }
