package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
)

// Versions an agent may report that are not a release version.
const (
	// AgentVersionUnknown: the agent did not say (it predates reporting
	// its version).
	AgentVersionUnknown = "unknown"
	// AgentVersionOther: a version that is not MAJOR.MINOR.PATCH, such
	// as a development build's "devel".
	AgentVersionOther = "other"
)

func newAgentsGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patchline_agents",
		Help: "Endpoints by the version of their agent (unknown: not reported; other: not a release version), per client.",
	}, []string{"client", "version"})
}

// observeAgents sets client's patchline_agents series from snap. The
// version label takes only release versions an agent reports, so its
// values are the few versions in use; anything else counts as other.
func (m *Metrics) observeAgents(client string, snap *protocol.Snapshot) {
	counts := map[string]int{}
	for _, ep := range snap.Endpoints {
		v := ep.AgentVersion
		switch s, err := protocol.ParseSemver(v); {
		case v == "":
			v = AgentVersionUnknown
		case err != nil:
			v = AgentVersionOther
		default:
			v = s.String()
		}
		counts[v]++
	}
	for v, n := range counts {
		m.agents.With(prometheus.Labels{"client": client, "version": v}).Set(float64(n))
	}
}
