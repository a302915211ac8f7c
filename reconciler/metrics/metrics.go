// Package metrics turns plan results into Prometheus series: compliance,
// drift, rollouts, exclusions, SLA breaches and policy revisions, per
// client. Labels are bounded (client, ring, source, severity, state,
// result, reason): never an endpoint or update id, so a fleet of 50,000
// endpoints costs the same number of series as a fleet of 50.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
)

// ExpiringWithin is how far ahead an exclusion counts as expiring soon.
const ExpiringWithin = 14 * 24 * time.Hour

// Endpoint states of patchline_endpoints.
const (
	EndpointCompliant = "compliant"
	EndpointDrifting  = "drifting"
	EndpointStale     = "stale"
)

// Metrics holds the controller's collectors. Observe replaces one client's
// series; the counters only grow.
type Metrics struct {
	endpoints      *prometheus.GaugeVec
	missing        *prometheus.GaugeVec
	compliance     *prometheus.GaugeVec
	halted         *prometheus.GaugeVec
	rollouts       *prometheus.GaugeVec
	exclusions     *prometheus.GaugeVec
	expiring       *prometheus.GaugeVec
	slaBreaches    *prometheus.GaugeVec
	exploited      *prometheus.GaugeVec
	exploitedLate  *prometheus.GaugeVec
	likely         *prometheus.GaugeVec
	rebootsPending *prometheus.GaugeVec
	decisions      *prometheus.GaugeVec
	jobsCreated    *prometheus.CounterVec
	jobResults     *prometheus.CounterVec
	revisionInfo   *prometheus.GaugeVec
	lastApplied    prometheus.Gauge
	lastRefused    prometheus.Gauge
	refused        *prometheus.CounterVec
	clientRefused  *prometheus.GaugeVec
	fleetRefused   prometheus.Gauge
	reconcileTime  prometheus.Histogram
	reconcileError *prometheus.CounterVec
	agents         *prometheus.GaugeVec
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{agents: newAgentsGauge()}
	m.newPlanGauges()
	m.newJobCounters()
	m.newRevisionSeries()
	m.newReconcileSeries()
	reg.MustRegister(m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring,
		m.slaBreaches, m.exploited, m.exploitedLate, m.likely, m.rebootsPending, m.decisions, m.jobsCreated, m.jobResults, m.revisionInfo, m.lastApplied,
		m.lastRefused, m.refused, m.clientRefused, m.fleetRefused, m.reconcileTime, m.reconcileError, m.agents, buildInfo())
	// Counters exist at zero from the start, so that increase() and rate()
	// see the first refusal or error instead of starting from it.
	for _, reason := range []string{"invalid", "verify"} {
		m.refused.WithLabelValues(reason)
	}
	for _, reason := range []string{"store", "plan", "sign"} {
		m.reconcileError.WithLabelValues(reason)
	}
	return m
}

// newPlanGauges creates the gauges Observe sets from one client's plan.
func (m *Metrics) newPlanGauges() {
	m.endpoints = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_endpoints",
		Help: "Endpoints by client and state: compliant (every desired update installed or excluded), drifting (a desired update is missing), stale (not seen within staleAfter).",
	}, []string{"client", "state"})
	m.missing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_missing_updates",
		Help: "Desired updates not installed on non-stale endpoints (endpoint-update pairs), by client, ring and severity.",
	}, []string{"client", "ring", "severity"})
	m.compliance = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_compliance_ratio",
		Help: "Share of a client's non-stale endpoints that are compliant (1 when it has none).",
	}, []string{"client"})
	m.halted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_halted_rollouts",
		Help: "Updates halted in a ring because the ring's failure share exceeded maxFailures, by client and ring; a commit with a resume entry lifts a halt.",
	}, []string{"client", "ring"})
	m.rollouts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_rollouts",
		Help: "Desired updates by client, ring and rollout state in that ring: waiting, in-progress, passed, halted (this ring or an earlier one failed too often).",
	}, []string{"client", "ring", "state"})
	m.exclusions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_exclusions_active",
		Help: "Exclusions in the client's policy that have not expired.",
	}, []string{"client"})
	m.expiring = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_exclusions_expiring",
		Help: "Active exclusions that expire within 14 days.",
	}, []string{"client"})
	m.slaBreaches = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_sla_breaches",
		Help: "Desired updates still missing past the due time the client's sla sets, by their severity or, for known-exploited ones, by sla.knownExploited (endpoint-update pairs), by client and severity.",
	}, []string{"client", "severity"})
	m.exploited = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_missing_known_exploited_updates",
		Help: "Desired updates missing on non-stale endpoints that fix a CVE known to be exploited (CISA KEV, or the endpoint's own flag without the feed), by client (endpoint-update pairs).",
	}, []string{"client"})
	m.exploitedLate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_known_exploited_sla_breaches",
		Help: "Known-exploited desired updates missing past the due time of the client's sla.knownExploited, by client (endpoint-update pairs).",
	}, []string{"client"})
	m.rebootsPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_reboots_pending",
		Help: "Endpoints not stale whose last report says a reboot is pending, by client.",
	}, []string{"client"})
	m.likely = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_missing_high_epss_updates",
		Help: "Desired updates missing on non-stale endpoints whose EPSS (FIRST's probability of exploitation within 30 days) is at least 0.1, by client (endpoint-update pairs).",
	}, []string{"client"})
	m.decisions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_decisions",
		Help: "Endpoint-update pairs by client and planner decision (state).",
	}, []string{"client", "state"})
}

// newJobCounters creates the counters of jobs created and of their results.
func (m *Metrics) newJobCounters() {
	m.jobsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_jobs_created_total",
		Help: "Jobs the controller created, by client and ring.",
	}, []string{"client", "ring"})
	m.jobResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_job_results_total",
		Help: "Update results agents reported, by client, ring and result (succeeded, failed, refused, unknown: the agent stopped while installing).",
	}, []string{"client", "ring", "result"})
}

// newRevisionSeries creates the series of the policy revisions applied and
// refused.
func (m *Metrics) newRevisionSeries() {
	m.revisionInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_policy_revision_info",
		Help: "The policy revision each client runs (value 1; the revision is a label).",
	}, []string{"client", "revision"})
	m.lastApplied = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchline_policy_last_applied_timestamp_seconds",
		Help: "When the controller last applied a new policy revision.",
	})
	m.lastRefused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchline_policy_last_refused_timestamp_seconds",
		Help: "When the controller last refused a policy revision (0 if never).",
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_policy_refused_total",
		Help: "Policy revisions refused, by reason: invalid (does not load or vet), verify (history rewrite or a missing or wrong signature).",
	}, []string{"reason"})
	m.clientRefused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_policy_client_refused",
		Help: "1 when the newest revision of the branch is refused for the client, which keeps running its last good revision.",
	}, []string{"client"})
	m.fleetRefused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "patchline_policy_fleet_refused",
		Help: "1 while the newest revision of the branch is refused as a whole (its root files do not load or vet, or it fails verification): every client keeps its last good revision.",
	})
}

// newReconcileSeries creates the series of re-plans: their duration and
// failures.
func (m *Metrics) newReconcileSeries() {
	m.reconcileTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "patchline_reconcile_duration_seconds",
		Help:    "Time to re-plan one client and queue its jobs.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	m.reconcileError = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_reconcile_errors_total",
		Help: "Re-plans that failed, by reason (store: reading or writing the store; plan: the planner; sign: signing a job).",
	}, []string{"reason"})
}

// Forget removes every gauge series of a client (it left the fleet repo and
// has no endpoints left).
func (m *Metrics) Forget(client string) {
	lbl := prometheus.Labels{"client": client}
	for _, v := range []*prometheus.GaugeVec{m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring, m.slaBreaches, m.exploited, m.exploitedLate, m.likely, m.rebootsPending, m.decisions, m.revisionInfo, m.clientRefused, m.agents} {
		v.DeletePartialMatch(lbl)
	}
}

// JobsCreated counts jobs created for a client's ring.
func (m *Metrics) JobsCreated(client, ring string, n int) {
	m.jobsCreated.With(prometheus.Labels{"client": client, "ring": ring}).Add(float64(n))
}

// JobResult counts one update result.
func (m *Metrics) JobResult(client, ring string, result protocol.Result) {
	m.jobResults.With(prometheus.Labels{"client": client, "ring": ring, "result": string(result)}).Inc()
}

// Applied records that client now runs revision (client "" is not a
// client: it sets only the fleet-wide last-applied time).
func (m *Metrics) Applied(client, revision string, at time.Time) {
	if client == "" {
		m.lastApplied.Set(float64(at.Unix()))
		m.fleetRefused.Set(0)
		return
	}
	m.revisionInfo.DeletePartialMatch(prometheus.Labels{"client": client})
	m.revisionInfo.With(prometheus.Labels{"client": client, "revision": revision}).Set(1)
	m.clientRefused.With(prometheus.Labels{"client": client}).Set(0)
}

// Refused records a refused revision: for the whole fleet when client is
// "", else for one client, which keeps its last good revision.
func (m *Metrics) Refused(client, reason string, at time.Time) {
	m.refused.With(prometheus.Labels{"reason": reason}).Inc()
	m.StillRefused(client, at)
}

// StillRefused sets the gauges of a refusal recorded before a restart,
// without counting it again.
func (m *Metrics) StillRefused(client string, at time.Time) {
	m.lastRefused.Set(float64(at.Unix()))
	if client == "" {
		m.fleetRefused.Set(1)
		return
	}
	m.clientRefused.With(prometheus.Labels{"client": client}).Set(1)
}

// ReconcileDone records one re-plan's duration.
func (m *Metrics) ReconcileDone(d time.Duration) { m.reconcileTime.Observe(d.Seconds()) }

// ReconcileFailed counts a failed re-plan.
func (m *Metrics) ReconcileFailed(reason string) {
	m.reconcileError.With(prometheus.Labels{"reason": reason}).Inc()
}
