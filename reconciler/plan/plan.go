// Package plan is the pure planner of Patchline: from a fleet's evaluated
// policy, the reported state of its endpoints and the time now, it decides
// for every (endpoint, update) pair whether the update is installed, missing
// (and goes into a job), waiting for its ring or window, excluded, halted,
// in progress, failed or not approved, and it plans one job per endpoint.
//
// Plan does no I/O and reads no clock: the same inputs give the same result,
// byte for byte once marshalled, whatever the order of the endpoints in the
// snapshot. That is what makes `patchctl plan` in a pull request trustworthy.
//
// The rules, in the order they are applied to a pair:
//
//  1. A report for a client the fleet does not have is unknown-client.
//  2. An installed update is installed when desired, not-approved otherwise.
//  3. An update is desired when a requirement names it or an approve rule
//     matches it and its minAge has passed; the first such entry is cited.
//     Not desired is not-approved (with EligibleAt when only minAge holds
//     it back). Approve rules weigh the update's effective values
//     (protocol.Update's Effective methods, EPSS and AllCVEs): what public
//     feeds say where the controller applied them, else what the endpoint
//     reported.
//  4. An unexpired exclusion naming the update and selecting the endpoint
//     makes it excluded.
//  5. The endpoint's ring is the first ring whose select matches; none is
//     waiting-ring.
//  6. An update in an open job is in-progress.
//  7. An update whose latest attempt failed (and is not forgiven by a resume
//     entry newer than the attempt) is failed: for good after three
//     unforgiven failures, otherwise until its ring's window next opens
//     after the attempt, when it is retried. An attempt whose outcome is
//     unknown (the agent stopped while installing) is in-progress until
//     the endpoint reports its inventory after it; still missing then, it
//     is retried at once and is no failure, neither of the pair nor of
//     the ring, unless the update was interrupted before: every unknown
//     outcome after the first counts as a failed attempt. A failed pre
//     script (hook-failed) is a failed attempt; a job a guard process
//     kept from starting (deferred-by-guard) is neither success nor
//     failure: the update waits for the window to open again.
//  8. A ring whose failure share exceeds maxFailures halts the update in it
//     and every later ring.
//  9. Ring k starts once ring k-1 has passed (its success share reached
//     minSuccess) and ring k-1's soak has elapsed since it passed; until
//     then waiting-ring.
//  10. A change freeze covering the endpoint, then a closed window, make it
//     waiting-window.
//  11. Otherwise the update is missing and goes into the endpoint's job,
//     unless the ring's maxConcurrent cap is reached (waiting-ring) or the
//     client is in report mode (no job). Endpoints already holding an open
//     job count towards the cap and are given the slots first; such an
//     endpoint may get a further job for updates that became due since.
//
// Three policy entries change these rules. A rollback entry takes the
// pairs of the endpoints it selects out of them: an installed update there
// is decided rollback (a rollback job) once rules 5 to 10 let it, judged
// by the rollback's own attempts and ring progress; a removed one is
// excluded while the entry stands. An active emergency entry naming the
// update lets a pair through the soak of rule 9 (skipSoak), the freeze
// (ignoreFreezes) and the closed window (ignoreWindows) of rule 10, never
// through rules 4 and 8; its job may run until the window next opens. And
// a ring passes only once minEndpoints of its endpoints count and have
// the update.
//
// Ring progress counts, per (client, update, ring), the ring's endpoints
// that have the update, leaving out those excluded from it and those not
// seen for longer than the client's staleAfter. A ring passes at the time
// of the k-th install among them, k = ceil(minSuccess × counted), and not
// before the ring could start; an endpoint that reports the update
// installed without a time counts as installed long ago. A ring nobody in
// it counts (an empty ring) passes as soon as it may start and adds no
// soak, since there was nothing to watch.
package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Plan decides every (endpoint, update) pair of snap against fleet at now
// and plans the jobs. It fails on a snapshot with duplicate endpoint ids, on
// a policy the planner cannot apply (a ring naming a window the client does
// not define, a bad match pattern, a time zone that was not loaded) and on
// updates whose requires form a cycle.
func Plan(fleet *schema.Fleet, snap *protocol.Snapshot, now time.Time, opts Options) (*Result, error) {
	p, err := newPlanner(fleet, snap, now, opts.Decisions, "")
	if err != nil {
		return nil, err
	}
	p.agentReleases = opts.AgentReleases
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.result(), nil
}

// planner holds one planning run.
type planner struct {
	fleet *schema.Fleet
	now   time.Time
	// detail asks for decisions with rules and reasons; without it only the
	// counts are kept, which saves building strings for millions of pairs.
	detail bool
	// eps are the endpoints in id order and info what pass one learnt
	// about each.
	eps  []*protocol.Endpoint
	info []endpointInfo
	// flat holds, for each endpoint's updates in order, the index of the
	// update's plan in its client's ups.
	flat    []int32
	clients map[string]*clientPlan
	// order lists the known clients that have endpoints, by id.
	order     []string
	counts    [numDecisions]int
	decisions []PairDecision
	jobs      []plannedJob
	// order1 is scratch space for updateOrder.
	order1 []int
	// unknown holds the notes of clients not in the fleet.
	unknown map[string]note
	// watch, when set, is called with every pair decided; Explain uses it.
	watch func(ep *protocol.Endpoint, u *protocol.Update, v *verdict)
	// agentReleases is Options.AgentReleases.
	agentReleases func(version string) error
}

type endpointInfo struct {
	// ring is the index of the endpoint's ring, or -1.
	ring     int
	stale    bool
	inFlight bool
	// freeze is the index of the active freeze covering it, or -1.
	freeze int
	// first is the offset of the endpoint's update indexes in flat.
	first int
}

type plannedJob struct {
	ring int
	job  Job
}

func newPlanner(fleet *schema.Fleet, snap *protocol.Snapshot, now time.Time, detail bool, only string) (*planner, error) {
	if fleet == nil || snap == nil {
		return nil, fmt.Errorf("plan: fleet and snapshot are required")
	}
	p := &planner{fleet: fleet, now: now, detail: detail, clients: map[string]*clientPlan{}}
	p.eps = make([]*protocol.Endpoint, 0, len(snap.Endpoints))
	for i, ep := range snap.Endpoints {
		if ep == nil {
			return nil, fmt.Errorf("plan: endpoints[%d] is null", i)
		}
		if j := slices.Index(ep.Updates, nil); j >= 0 {
			return nil, fmt.Errorf("plan: endpoint %q: updates[%d] is null", ep.ID, j)
		}
		if only == "" || ep.Client == only {
			p.eps = append(p.eps, ep)
		}
	}
	slices.SortFunc(p.eps, func(a, b *protocol.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(p.eps); i++ {
		if p.eps[i].ID == p.eps[i-1].ID {
			return nil, fmt.Errorf("plan: duplicate endpoint id %q", p.eps[i].ID)
		}
	}
	p.fleet, p.eps = withAgentUpdates(fleet, p.eps)
	return p, nil
}

// run makes both passes: the first assigns rings and counts ring progress,
// the second decides every pair in endpoint order and plans the jobs.
func (p *planner) run() error {
	p.info = make([]endpointInfo, len(p.eps))
	n := 0
	for _, ep := range p.eps {
		n += len(ep.Updates)
	}
	p.flat = make([]int32, n)
	if p.detail {
		p.decisions = make([]PairDecision, 0, n)
	}
	byClient := map[string][]int{}
	for i, ep := range p.eps {
		byClient[ep.Client] = append(byClient[ep.Client], i)
	}
	for id := range byClient {
		if c := p.fleet.Clients[id]; c != nil {
			p.order = append(p.order, id)
		}
	}
	slices.Sort(p.order)
	off := 0
	for i, ep := range p.eps {
		p.info[i].first = off
		off += len(ep.Updates)
	}
	for _, id := range p.order {
		cp, err := p.newClientPlan(id, p.fleet.Clients[id])
		if err != nil {
			return fmt.Errorf("client %q: %w", id, err)
		}
		p.clients[id] = cp
		if err := p.prepare(cp, byClient[id]); err != nil {
			return fmt.Errorf("client %q: %w", id, err)
		}
		for _, i := range byClient[id] {
			if err := p.survey(cp, i); err != nil {
				return fmt.Errorf("client %q: endpoint %q: %w", id, p.eps[i].ID, err)
			}
		}
		for k := range cp.ups {
			cp.gate(&cp.ups[k], p.now)
			if rb := cp.ups[k].rb; rb != nil {
				cp.gate(rb, p.now)
			}
		}
	}
	var buf []pair
	for i := range p.eps {
		var err error
		if buf, err = p.decideEndpoint(i, buf[:0]); err != nil {
			return err
		}
	}
	return nil
}

// result assembles the sorted Result.
func (p *planner) result() *Result {
	res := &Result{Revision: p.fleet.Revision, Now: p.now, Summary: make(map[Decision]int, len(AllDecisions)), Jobs: []Job{}, Rollouts: []Rollout{},
		Modes: make([]ClientMode, 0, len(p.order))}
	for _, d := range AllDecisions {
		res.Summary[d] = p.counts[slot(d)]
	}
	slices.SortFunc(p.jobs, func(a, b plannedJob) int {
		return cmp.Or(strings.Compare(a.job.Client, b.job.Client), cmp.Compare(a.ring, b.ring), strings.Compare(a.job.Endpoint, b.job.Endpoint),
			strings.Compare(a.job.Action, b.job.Action))
	})
	for _, j := range p.jobs {
		res.Jobs = append(res.Jobs, j.job)
	}
	for _, id := range p.order {
		cp := p.clients[id]
		res.Rollouts = cp.rollouts(res.Rollouts)
		m := ClientMode{Client: id, Mode: cp.c.Mode}
		if cp.c.ModePos.File != "" {
			m.Rule = cp.c.ModePos.Rule()
		}
		res.Modes = append(res.Modes, m)
		for k := range cp.c.Emergency {
			e := &cp.c.Emergency[k]
			res.Emergencies = append(res.Emergencies, EmergencyEntry{Client: id, Update: e.Update, Reason: e.Reason, Until: e.Until.UTC(),
				SkipSoak: e.SkipSoak, IgnoreWindows: e.IgnoreWindows, IgnoreFreezes: e.IgnoreFreezes, Active: e.Active(p.now), Rule: e.Pos.Rule()})
		}
	}
	res.Decisions = p.decisions
	return res
}

// numDecisions is len(AllDecisions).
const numDecisions = 12

// slot is the place of d in AllDecisions; a switch is cheaper than a map
// for the millions of pairs a large fleet has.
func slot(d Decision) int {
	switch d {
	case Installed:
		return 0
	case Missing:
		return 1
	case Rollback:
		return 2
	case Unavailable:
		return 3
	case InProgress:
		return 4
	case Failed:
		return 5
	case Halted:
		return 6
	case WaitingRing:
		return 7
	case WaitingWindow:
		return 8
	case Excluded:
		return 9
	case NotApproved:
		return 10
	}
	return 11
}
