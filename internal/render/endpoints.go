package render

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

// EndpointDrift is one endpoint's line in `patchctl endpoints`: where it
// stands against the policy its client runs.
type EndpointDrift struct {
	ID       string `json:"id"`
	Client   string `json:"client"`
	Hostname string `json:"hostname"`
	// Ring is the ring the endpoint is in; "" when it is in none, or when
	// it reports no update (the planner places an endpoint in a ring for
	// its updates' decisions).
	Ring string `json:"ring,omitempty"`
	// LastSeen is when its last report arrived; zero when none did.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Missing counts the desired updates it does not have (drift: every
	// decision for which plan.Decision.Drift holds); Failed those of them
	// whose installs failed.
	Missing int `json:"missing"`
	Failed  int `json:"failed"`
}

// EndpointDrifts sums up decisions per endpoint of snap, in the
// snapshot's order.
func EndpointDrifts(snap *protocol.Snapshot, decisions []plan.PairDecision) []EndpointDrift {
	rows := make([]EndpointDrift, 0, len(snap.Endpoints))
	index := make(map[string]int, len(snap.Endpoints))
	for _, ep := range snap.Endpoints {
		if ep == nil {
			continue
		}
		index[ep.ID] = len(rows)
		rows = append(rows, EndpointDrift{ID: ep.ID, Client: ep.Client, Hostname: ep.Hostname, LastSeen: ep.LastSeen})
	}
	for _, d := range decisions {
		i, ok := index[d.Endpoint]
		if !ok {
			continue
		}
		r := &rows[i]
		if r.Ring == "" {
			r.Ring = d.Ring
		}
		if d.Decision.Drift() {
			r.Missing++
		}
		if d.Decision == plan.Failed {
			r.Failed++
		}
	}
	return rows
}

// Endpoints writes rows as a table (Text) or as {"endpoints": [...]}
// (JSON).
func Endpoints(w io.Writer, f Format, rows []EndpointDrift) error {
	switch f {
	case JSON:
		if rows == nil {
			rows = []EndpointDrift{}
		}
		return writeJSON(w, struct {
			Endpoints []EndpointDrift `json:"endpoints"`
		}{rows})
	case Text:
	default:
		return fmt.Errorf("endpoints: no %s output", f)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOSTNAME\tRING\tLAST SEEN\tMISSING\tFAILED")
	for _, r := range rows {
		seen := "never"
		if !r.LastSeen.IsZero() {
			seen = stamp(r.LastSeen)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", txt(r.ID), txt(r.Hostname), orDash(txt(r.Ring)), seen, r.Missing, r.Failed)
	}
	return tw.Flush()
}
