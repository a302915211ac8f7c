package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Feeds are the collectors of the public vulnerability feeds the
// controller applies:
//
//   - patchline_feed_last_success_timestamp_seconds{feed}: when the feed's
//     data in force was fetched (by patchd or by `patchctl feeds fetch` on
//     another machine), or last confirmed unchanged by the publisher
//   - patchline_feed_errors_total{feed}: fetches and loads that failed; the
//     last good copy stays in force
//
// feed is one of kev, epss, nvd, debian.
type Feeds struct {
	success *prometheus.GaugeVec
	errors  *prometheus.CounterVec

	mu sync.Mutex // guards last
	// last is each feed's time in the gauge, so it never moves back.
	last map[string]time.Time
}

// NewFeeds registers the feed collectors with reg.
func NewFeeds(reg prometheus.Registerer) *Feeds {
	f := &Feeds{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patchline_feed_last_success_timestamp_seconds",
			Help: "When the data in force of a public vulnerability feed was fetched or last confirmed unchanged, by feed (kev, epss, nvd, debian).",
		}, []string{"feed"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patchline_feed_errors_total",
			Help: "Fetches or loads of a public vulnerability feed that failed, by feed; the last good copy stays in force.",
		}, []string{"feed"}),
		last: make(map[string]time.Time),
	}
	reg.MustRegister(f.success, f.errors)
	return f
}

// Succeeded records that feed's data in force is as of at (never moving
// the time back).
func (f *Feeds) Succeeded(feed string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !at.After(f.last[feed]) {
		return
	}
	f.last[feed] = at
	f.success.WithLabelValues(feed).Set(float64(at.UnixNano()) / 1e9)
}

// Failed counts a failed fetch or load of feed.
func (f *Feeds) Failed(feed string) { f.errors.WithLabelValues(feed).Inc() }
