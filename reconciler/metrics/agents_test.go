package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
)

func TestAgentsByVersion(t *testing.T) {
	m := New(prometheus.NewRegistry())
	snap := func(versions ...string) *protocol.Snapshot {
		s := &protocol.Snapshot{}
		for _, v := range versions {
			s.Endpoints = append(s.Endpoints, &protocol.Endpoint{Client: "acme", AgentVersion: v})
		}
		return s
	}
	m.observeAgents("acme", snap("1.4.1", "1.4.1", "1.4.2", "", "devel", "v1.4.2"))
	for _, tc := range []struct {
		version string
		want    float64
	}{
		{"1.4.1", 2},
		{"1.4.2", 2}, // "v1.4.2" is 1.4.2
		{AgentVersionUnknown, 1},
		{AgentVersionOther, 1},
	} {
		if got := testutil.ToFloat64(m.agents.WithLabelValues("acme", tc.version)); got != tc.want {
			t.Errorf("patchline_agents{version=%q} = %v, want %v", tc.version, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.agents); n != 4 {
		t.Errorf("%d series, want 4", n)
	}
	m.Forget("acme")
	if n := testutil.CollectAndCount(m.agents); n != 0 {
		t.Errorf("%d series after Forget, want 0", n)
	}
}
