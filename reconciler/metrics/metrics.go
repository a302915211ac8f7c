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
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
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
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	m.newPlanGauges()
	m.newJobCounters()
	m.newRevisionSeries()
	m.newReconcileSeries()
	reg.MustRegister(m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring,
		m.slaBreaches, m.decisions, m.jobsCreated, m.jobResults, m.revisionInfo, m.lastApplied,
		m.lastRefused, m.refused, m.clientRefused, m.fleetRefused, m.reconcileTime, m.reconcileError)
	// Counters exist at zero from the start, so that increase() and rate()
	// see the first refusal or error instead of starting from it.
	for _, reason := range []string{"invalid", "verify"} {
		m.refused.WithLabelValues(reason)
	}
	for _, reason := range []string{"store", "plan"} {
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
		Help: "Desired updates still missing longer after release than the client's sla allows for their severity (endpoint-update pairs), by client and severity.",
	}, []string{"client", "severity"})
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
		Help: "Update results agents reported, by client, ring and result (succeeded, failed, refused).",
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
		Help: "Re-plans that failed, by reason (store, plan).",
	}, []string{"reason"})
}

// drift lists the decisions that make an endpoint drifting: a desired update
// that is not installed and not excluded.
var drift = map[plan.Decision]bool{
	plan.Missing: true, plan.InProgress: true, plan.Failed: true, plan.Halted: true,
	plan.WaitingRing: true, plan.WaitingWindow: true,
}

// Figures sum up one client's plan: endpoints by state, the compliant
// share of the non-stale ones, and the desired updates not installed.
type Figures struct {
	Compliant, Drifting, Stale int
	Compliance                 float64
	Missing                    int
}

// Observe replaces client's series with what res (planned with
// Options.Decisions) and snap say at now, and returns the figures it set.
// c is nil for a client the fleet repo does not have.
func (m *Metrics) Observe(client string, c *schema.Client, snap *protocol.Snapshot, res *plan.Result, now time.Time) Figures {
	lbl := prometheus.Labels{"client": client}
	for _, v := range []*prometheus.GaugeVec{m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring, m.slaBreaches, m.decisions} {
		v.DeletePartialMatch(lbl)
	}
	eps := endpointsOf(client, snap, c.EffectiveStaleAfter(), now)

	for d, n := range res.Summary {
		m.decisions.With(prometheus.Labels{"client": client, "state": string(d)}).Set(float64(n))
	}
	missing, drifting := m.observeDrift(client, c, res.Decisions, eps, now)
	fig := figures(eps.stale, drifting, missing)
	m.endpoints.With(prometheus.Labels{"client": client, "state": EndpointCompliant}).Set(float64(fig.Compliant))
	m.endpoints.With(prometheus.Labels{"client": client, "state": EndpointDrifting}).Set(float64(fig.Drifting))
	m.endpoints.With(prometheus.Labels{"client": client, "state": EndpointStale}).Set(float64(fig.Stale))
	m.compliance.With(lbl).Set(fig.Compliance)

	if c != nil {
		m.zeroRings(client, c.Rings)
	}
	m.observeRollouts(client, res.Rollouts)
	m.observeExclusions(client, c, now)
	return fig
}

// pairKey names one (endpoint, update) pair.
type pairKey struct{ endpoint, update string }

// clientEndpoints is what Observe reads of a client's endpoints in the
// snapshot.
type clientEndpoints struct {
	// stale says, for each of the client's endpoints, whether it is stale.
	stale map[string]bool
	// released is the release time of each reported pair.
	released map[pairKey]time.Time
}

// endpointsOf reads client's endpoints in snap; one not seen for longer
// than staleAfter at now is stale.
func endpointsOf(client string, snap *protocol.Snapshot, staleAfter time.Duration, now time.Time) clientEndpoints {
	eps := clientEndpoints{
		stale:    make(map[string]bool, len(snap.Endpoints)),
		released: make(map[pairKey]time.Time),
	}
	for _, ep := range snap.Endpoints {
		if ep.Client != client {
			continue
		}
		eps.stale[ep.ID] = now.Sub(ep.LastSeen) > staleAfter
		for _, u := range ep.Updates {
			eps.released[pairKey{ep.ID, u.ID}] = u.Released
		}
	}
	return eps
}

// observeDrift goes through client's decisions that drift: it counts all
// of them as missing, and those of endpoints that are not stale into the
// missing-updates series and, once missing for longer after release than
// the client's sla for their severity, into the SLA breach series. It
// returns the missing count and the non-stale endpoints that drift.
func (m *Metrics) observeDrift(client string, c *schema.Client, decisions []plan.PairDecision, eps clientEndpoints, now time.Time) (int, map[string]bool) {
	missing := 0
	drifting := make(map[string]bool)
	for _, d := range decisions {
		if d.Client != client || !drift[d.Decision] {
			continue
		}
		missing++
		if eps.stale[d.Endpoint] {
			continue
		}
		drifting[d.Endpoint] = true
		sev := d.Severity
		if sev == "" {
			sev = "none"
		}
		m.missing.With(prometheus.Labels{"client": client, "ring": d.Ring, "severity": sev}).Inc()
		if c == nil {
			continue
		}
		if limit, ok := c.SLA[d.Severity]; ok {
			if rel := eps.released[pairKey{d.Endpoint, d.Update}]; !rel.IsZero() && now.Sub(rel) > limit {
				m.slaBreaches.With(prometheus.Labels{"client": client, "severity": sev}).Inc()
			}
		}
	}
	return missing, drifting
}

// figures counts the client's endpoints by state (stale first, then
// drifting, compliant otherwise) and the compliant share of those not
// stale, which is 1 when every endpoint is stale or there are none.
func figures(stale, drifting map[string]bool, missing int) Figures {
	fig := Figures{Missing: missing}
	for id, isStale := range stale {
		switch {
		case isStale:
			fig.Stale++
		case drifting[id]:
			fig.Drifting++
		default:
			fig.Compliant++
		}
	}
	fig.Compliance = 1
	if n := fig.Compliant + fig.Drifting; n > 0 {
		fig.Compliance = float64(fig.Compliant) / float64(n)
	}
	return fig
}

// zeroRings makes the series of each of the client's rings exist: no halted
// updates and job counters at zero. Observe calls it before
// observeRollouts, which counts halts on top of the zero.
func (m *Metrics) zeroRings(client string, rings []schema.Ring) {
	for _, r := range rings {
		m.halted.With(prometheus.Labels{"client": client, "ring": r.Name}).Set(0)
		// The ring's counters exist at zero before its first job, so
		// that increase() counts the first jobs and results.
		m.jobsCreated.With(prometheus.Labels{"client": client, "ring": r.Name})
		for _, result := range []protocol.Result{protocol.ResultSucceeded, protocol.ResultFailed, protocol.ResultRefused} {
			m.jobResults.With(prometheus.Labels{"client": client, "ring": r.Name, "result": string(result)})
		}
	}
}

// observeRollouts counts the client's desired updates by ring and rollout
// state, and its halted rollouts by the ring that halted them.
func (m *Metrics) observeRollouts(client string, rollouts []plan.Rollout) {
	for _, r := range rollouts {
		if r.Client == client {
			m.rollouts.With(prometheus.Labels{"client": client, "ring": r.Ring, "state": string(r.State)}).Inc()
		}
		// A halt counts once, in the ring whose failures caused it; the
		// later rings it blocks show as halted decisions instead.
		if r.Client == client && r.State == plan.RolloutHalted && r.Failed > 0 {
			m.halted.With(prometheus.Labels{"client": client, "ring": r.Ring}).Inc()
		}
	}
}

// observeExclusions sets how many of the client's exclusions are active at
// now and how many of those expire within ExpiringWithin; a client the
// fleet repo does not have (c nil) has none.
func (m *Metrics) observeExclusions(client string, c *schema.Client, now time.Time) {
	var active, expiring int
	if c != nil {
		for _, e := range c.Exclusions {
			if !now.Before(e.Until) {
				continue
			}
			active++
			if e.Until.Sub(now) <= ExpiringWithin {
				expiring++
			}
		}
	}
	lbl := prometheus.Labels{"client": client}
	m.exclusions.With(lbl).Set(float64(active))
	m.expiring.With(lbl).Set(float64(expiring))
}

// Forget removes every gauge series of a client (it left the fleet repo and
// has no endpoints left).
func (m *Metrics) Forget(client string) {
	lbl := prometheus.Labels{"client": client}
	for _, v := range []*prometheus.GaugeVec{m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring, m.slaBreaches, m.decisions, m.revisionInfo, m.clientRefused} {
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
