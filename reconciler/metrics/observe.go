package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

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
	for _, v := range []*prometheus.GaugeVec{m.endpoints, m.missing, m.compliance, m.halted, m.rollouts, m.exclusions, m.expiring, m.slaBreaches, m.exploited, m.exploitedLate, m.likely, m.rebootsPending, m.decisions, m.agents} {
		v.DeletePartialMatch(lbl)
	}
	m.observeAgents(client, snap)
	for _, v := range []*prometheus.GaugeVec{m.exploited, m.exploitedLate, m.likely, m.rebootsPending} {
		v.With(lbl).Set(0)
	}
	eps := endpointsOf(client, snap, c.EffectiveStaleAfter(), now)
	m.rebootsPending.With(lbl).Set(float64(eps.rebootsPending))

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
	// updates holds the update of each reported pair.
	updates map[pairKey]*protocol.Update
	// rebootsPending counts the endpoints not stale with a reboot
	// pending.
	rebootsPending int
}

// endpointsOf reads client's endpoints in snap; one not seen for longer
// than staleAfter at now is stale.
func endpointsOf(client string, snap *protocol.Snapshot, staleAfter time.Duration, now time.Time) clientEndpoints {
	eps := clientEndpoints{
		stale:   make(map[string]bool, len(snap.Endpoints)),
		updates: make(map[pairKey]*protocol.Update),
	}
	for _, ep := range snap.Endpoints {
		if ep.Client != client {
			continue
		}
		eps.stale[ep.ID] = now.Sub(ep.LastSeen) > staleAfter
		if !eps.stale[ep.ID] && (ep.RebootPending || ep.Reboot != nil && !ep.Reboot.PendingSince.IsZero()) {
			eps.rebootsPending++
		}
		for _, u := range ep.Updates {
			eps.updates[pairKey{ep.ID, u.ID}] = u
		}
	}
	return eps
}

// HighEPSS is the EPSS probability from which patchline_missing_high_epss_updates
// counts an update: one in ten that exploitation is seen within 30 days.
const HighEPSS = 0.1

// observeDrift goes through client's decisions that drift: it counts all
// of them as missing, and those of endpoints that are not stale into the
// missing-updates series and, once past the due time the client's sla
// sets (plan.Due), into the SLA breach series. It returns the missing
// count and the non-stale endpoints that drift.
func (m *Metrics) observeDrift(client string, c *schema.Client, decisions []plan.PairDecision, eps clientEndpoints, now time.Time) (int, map[string]bool) {
	missing := 0
	drifting := make(map[string]bool)
	for _, d := range decisions {
		if d.Client != client || !d.Decision.Drift() {
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
		u := eps.updates[pairKey{d.Endpoint, d.Update}]
		if u == nil {
			continue
		}
		if u.EffectiveKnownExploited() {
			m.exploited.With(prometheus.Labels{"client": client}).Inc()
		}
		if u.EPSS() >= HighEPSS {
			m.likely.With(prometheus.Labels{"client": client}).Inc()
		}
		if due, rule, ok := plan.Due(c, u, now); ok && now.After(due) {
			m.slaBreaches.With(prometheus.Labels{"client": client, "severity": sev}).Inc()
			if rule == schema.SLAKnownExploited {
				m.exploitedLate.With(prometheus.Labels{"client": client}).Inc()
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
		for _, result := range protocol.Results {
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
