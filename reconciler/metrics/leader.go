package metrics

import "github.com/prometheus/client_golang/prometheus"

// Leader are the collectors of a replica's leadership:
//
//   - patchline_leader{replica}: 1 while this replica leads (follows the
//     fleet repo and plans), else 0
//   - patchline_fenced_writes_total: leader-only writes the store refused
//     because another replica had taken the leader lease over
//
// replica is the name the replica was given (--replica-name, by default
// the host name): each replica exports its own one, so the label holds as
// many values as there are replicas.
type Leader struct {
	leading prometheus.Gauge
}

// NewLeader registers the leadership collectors of the replica named
// replica with reg; fenced reads the store's count of refused writes
// (nil: a store without fencing, which counts none).
func NewLeader(reg prometheus.Registerer, replica string, fenced func() int64) *Leader {
	l := &Leader{leading: prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "patchline_leader",
		Help:        "1 while this replica leads: follows the fleet repo and plans every client; 0 while it follows.",
		ConstLabels: prometheus.Labels{"replica": replica},
	})}
	if fenced == nil {
		fenced = func() int64 { return 0 }
	}
	reg.MustRegister(l.leading, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "patchline_fenced_writes_total",
		Help: "Leader-only writes (jobs, revisions, halts, expiry) the store refused because another replica took the leader lease over.",
	}, func() float64 { return float64(fenced()) }))
	return l
}

// SetLeading sets whether this replica leads.
func (l *Leader) SetLeading(leading bool) {
	v := 0.0
	if leading {
		v = 1
	}
	l.leading.Set(v)
}
