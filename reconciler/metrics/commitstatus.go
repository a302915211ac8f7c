package metrics

import "github.com/prometheus/client_golang/prometheus"

// Reasons a commit status is given up (patchline_commit_status_dropped_total).
const (
	// StatusQueueFull: the queue of statuses waiting for the forge was
	// full, and the oldest made way for a new one.
	StatusQueueFull = "queue_full"
	// StatusRejected: the forge answered with a final error (a wrong
	// token, repository or commit), which no retry would change.
	StatusRejected = "rejected"
)

// CommitStatus are the collectors of the commit statuses patchd posts to
// the fleet repo's forge (package commitstatus):
//
//   - patchline_commit_status_sent_total{provider}: statuses the forge
//     accepted
//   - patchline_commit_status_failures_total{provider}: requests that
//     failed (the forge unreachable, an error, a rate limit, a refusal);
//     each retry that fails counts again
//   - patchline_commit_status_dropped_total{provider, reason}: statuses
//     given up, never to be posted: queue_full or rejected
//
// provider is github, gitlab or gitea: one per patchd.
type CommitStatus struct {
	sent     prometheus.Counter
	failures prometheus.Counter
	dropped  *prometheus.CounterVec
	provider string
}

// NewCommitStatus registers the commit status collectors of provider with
// reg; every series counts from zero at once, so that increase() sees
// the first failure.
func NewCommitStatus(reg prometheus.Registerer, provider string) *CommitStatus {
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_commit_status_sent_total",
		Help: "Commit statuses the fleet repo's forge accepted, by provider (github, gitlab, gitea).",
	}, []string{"provider"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_commit_status_failures_total",
		Help: "Requests posting a commit status that failed (forge unreachable, server error, rate limit, refusal), by provider; a failed retry counts again.",
	}, []string{"provider"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_commit_status_dropped_total",
		Help: "Commit statuses given up, by provider and reason: queue_full (the oldest waiting status made way for a new one), rejected (the forge refused it for good).",
	}, []string{"provider", "reason"})
	reg.MustRegister(sent, failures, dropped)
	c := &CommitStatus{
		sent:     sent.WithLabelValues(provider),
		failures: failures.WithLabelValues(provider),
		dropped:  dropped,
		provider: provider,
	}
	for _, reason := range []string{StatusQueueFull, StatusRejected} {
		dropped.WithLabelValues(provider, reason)
	}
	return c
}

// Sent counts a status the forge accepted.
func (c *CommitStatus) Sent() { c.sent.Inc() }

// Failed counts a request that failed.
func (c *CommitStatus) Failed() { c.failures.Inc() }

// Dropped counts a status given up for reason (StatusQueueFull,
// StatusRejected).
func (c *CommitStatus) Dropped(reason string) { c.dropped.WithLabelValues(c.provider, reason).Inc() }
