package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Agent versions roll out like an update. Before planning, every endpoint
// whose policy names an agent version (its ring's agent entry, else its
// client's) gets the agent update of that version
// (protocol.AgentUpdate), installed when its agent reports the version,
// and its client a requirement naming that update at the agent entry's
// position. From there the ordinary rules apply: rings, soaks, windows,
// exclusions, halts, maxConcurrent and jobs, and `why` cites the agent
// entry.
//
// An endpoint whose agent reports no version, or none of the form 1.4.2
// (a development build), or a version above the policy's, gets no agent
// update: agents predating self-update cannot take one, and an agent is
// never taken back to a lower version. Agent updates of other versions
// that the snapshot holds (a job of an earlier policy) are left out.

// withAgentUpdates returns eps and fleet as the planner sees them: eps with
// the agent updates the policy asks for, fleet with the requirements that
// make them desired. Endpoints and clients the policy leaves alone are the
// caller's own; the others are copies, so the snapshot is not changed.
func withAgentUpdates(fleet *schema.Fleet, eps []*protocol.Endpoint) (*schema.Fleet, []*protocol.Endpoint) {
	var out []*protocol.Endpoint
	required := map[string]map[string]schema.Pos{}
	for i, ep := range eps {
		c := fleet.Clients[ep.Client]
		var want *schema.AgentPolicy
		if c != nil && asksAnyAgent(c) {
			want = c.AgentFor(ringOf(c, ep))
		}
		id := ""
		if want != nil && offered(want.Version, ep.AgentVersion) {
			id = protocol.AgentUpdateID(want.Version)
		}
		if id == "" && !slices.ContainsFunc(ep.Updates, isAgentUpdate) {
			continue
		}
		if out == nil {
			out = slices.Clone(eps)
		}
		e := *ep
		e.Updates = slices.DeleteFunc(slices.Clone(ep.Updates), func(u *protocol.Update) bool { return isAgentUpdate(u) && u.ID != id })
		if id != "" {
			k, found := slices.BinarySearchFunc(e.Updates, id, func(u *protocol.Update, id string) int { return strings.Compare(u.ID, id) })
			if !found {
				e.Updates = slices.Insert(e.Updates, k, protocol.AgentUpdate(want.Version, ep.AgentVersion))
			}
			if required[ep.Client] == nil {
				required[ep.Client] = map[string]schema.Pos{}
			}
			required[ep.Client][id] = want.Pos
		}
		out[i] = &e
	}
	if out == nil {
		return fleet, eps
	}
	if len(required) == 0 {
		return fleet, out
	}
	f := *fleet
	f.Clients = maps.Clone(fleet.Clients)
	for client, ids := range required {
		c := *f.Clients[client]
		c.Baseline.Require = slices.Clone(c.Baseline.Require)
		for _, id := range slices.Sorted(maps.Keys(ids)) {
			c.Baseline.Require = append(c.Baseline.Require, schema.Requirement{ID: id, Pos: ids[id]})
		}
		f.Clients[client] = &c
	}
	return &f, out
}

func isAgentUpdate(u *protocol.Update) bool { return u.Source == protocol.SourcePatchline }

// ringOf is the index of the first ring of c selecting ep, or -1.
func ringOf(c *schema.Client, ep *protocol.Endpoint) int {
	for k := range c.Rings {
		if selects(&c.Rings[k].Select, ep) {
			return k
		}
	}
	return -1
}

// offered says whether an agent running version running takes the agent
// update to version want: its version is a release version no higher
// than want.
func offered(want, running string) bool {
	w, err := protocol.ParseSemver(want)
	if err != nil {
		return false
	}
	r, err := protocol.ParseSemver(running)
	return err == nil && r.Compare(w) <= 0
}

// unoffered is the verdict on an agent update the controller cannot offer
// (Options.AgentReleases refuses its version: no release directory, or
// one not signed): unavailable, with the reason, instead of a job the
// agent could only fail.
func (p *planner) unoffered(ds *desire, u *protocol.Update) (verdict, bool) {
	if p.agentReleases == nil || u.Source != protocol.SourcePatchline || u.Installed {
		return verdict{}, false
	}
	err := p.agentReleases(u.Version)
	if err == nil {
		return verdict{}, false
	}
	return verdict{Unavailable, note{rule: ds.rule, reason: fmt.Sprintf("agent release %s is not offered: %v", u.Version, err)}}, true
}

// asksAgent says whether id is the agent update the policy gives ep.
func asksAgent(fleet *schema.Fleet, ep *protocol.Endpoint, id string) bool {
	c := fleet.Clients[ep.Client]
	if c == nil {
		return false
	}
	want := c.AgentFor(ringOf(c, ep))
	return want != nil && offered(want.Version, ep.AgentVersion) && protocol.AgentUpdateID(want.Version) == id
}

// asksAnyAgent says whether c or any of its rings names an agent version.
func asksAnyAgent(c *schema.Client) bool {
	return c.Agent != nil || slices.ContainsFunc(c.Rings, func(r schema.Ring) bool { return r.Agent != nil })
}
