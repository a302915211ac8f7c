package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Explain says why Plan decides what it does for one (endpoint, update)
// pair: the ring that selects the endpoint, the rule that makes the update
// desired and the evidence of the update's data the approve rules weighed,
// any exclusion or freeze, the update's progress through the client's
// rings, the window, and the decision. It plans the endpoint's
// whole client with the same code as Plan, since ring progress and
// maxConcurrent depend on the other endpoints.
func Explain(fleet *schema.Fleet, snap *protocol.Snapshot, now time.Time, endpointID, updateID string) (*Explanation, error) {
	ep, err := explainedEndpoint(fleet, snap, endpointID, updateID)
	if err != nil {
		return nil, err
	}
	p, err := newPlanner(fleet, snap, now, true, ep.Client)
	if err != nil {
		return nil, err
	}
	x := &Explanation{Endpoint: endpointID, Client: ep.Client, Update: updateID, Revision: fleet.Revision, Now: now}
	var cp *clientPlan
	var info *endpointInfo
	var up *updatePlan
	var u *protocol.Update
	p.watch = func(e *protocol.Endpoint, pu *protocol.Update, v *verdict) {
		if e.ID != endpointID || pu.ID != updateID {
			return
		}
		k, _ := slices.BinarySearchFunc(p.eps, endpointID, func(a *protocol.Endpoint, id string) int { return strings.Compare(a.ID, id) })
		info, u = &p.info[k], pu
		if cp = p.clients[e.Client]; cp != nil {
			up = &cp.ups[cp.index[pu.ID]]
		}
		x.Decision = p.pairDecision(e, cp, info, &pair{u: pu, v: *v})
	}
	if err := p.run(); err != nil {
		return nil, err
	}
	if cp == nil {
		return x, nil
	}
	x.KnownClient = true
	x.Stale = info.stale
	x.Desired = up.desire.desired
	x.Desire = up.desire.cite
	x.Evidence = evidence(cp.c.Baseline.Approve[:up.desire.weighed], up.update)
	if info.ring >= 0 {
		x.Ring, x.Window = cp.ringCitation(info.ring)
	}
	x.Reboot = cp.rebootCitation(ep, info.ring)
	if cp.rollbackSelects(up, ep) {
		r := &cp.c.Rollback[up.rollback]
		x.Rollback = &Citation{Kind: "rollback", Name: r.Update, Rule: r.Pos.Rule(), Detail: rollbackReason(r)}
		x.Rollouts = cp.rollout(up.rb)
		f := cp.failure(up.rb, rollbackView(u), info.ring, ep.LastSeen)
		x.FailedAttempts, x.Interruptions = f.count, f.interruptions
		return x, nil
	}
	if !up.desire.desired {
		return x, nil
	}
	x.Exclusion, x.Freeze = cp.holdCitations(up, ep, info)
	x.Rollouts = cp.rollout(up)
	f := cp.failure(up, u, info.ring, ep.LastSeen)
	x.Resume = p.resumeCitation(cp, up, u, info, ep.LastSeen, f)
	if cp.report != nil {
		x.Mode = &Citation{Kind: "mode", Name: string(schema.ModeReport), Rule: cp.report.rule, Detail: "every decision is made, no job is sent"}
	}
	if up.emergency >= 0 {
		e := &cp.c.Emergency[up.emergency]
		x.Emergency = &Citation{Kind: "emergency", Name: e.Update, Rule: e.Pos.Rule(), At: timePtr(e.Until),
			Detail: cp.emergencyReason(e, e.SkipSoak, e.IgnoreFreezes, e.IgnoreWindows)}
		x.Emergency.Detail = strings.Replace(x.Emergency.Detail, "; through ", "; lets it through ", 1)
	}
	x.FailedAttempts, x.Interruptions = f.count, f.interruptions
	if f.pending != nil {
		x.Interruptions++
	}
	return x, nil
}

// explainedEndpoint returns the endpoint of snap that Explain is asked about,
// checking that it reports the update; its errors name what is missing.
func explainedEndpoint(fleet *schema.Fleet, snap *protocol.Snapshot, endpointID, updateID string) (*protocol.Endpoint, error) {
	if fleet == nil || snap == nil {
		return nil, fmt.Errorf("explain: fleet and snapshot are required")
	}
	i := slices.IndexFunc(snap.Endpoints, func(ep *protocol.Endpoint) bool { return ep != nil && ep.ID == endpointID })
	if i < 0 {
		return nil, fmt.Errorf("explain: endpoint %q is not in the state snapshot", endpointID)
	}
	ep := snap.Endpoints[i]
	if !slices.ContainsFunc(ep.Updates, func(u *protocol.Update) bool { return u != nil && u.ID == updateID }) && !asksAgent(fleet, ep, updateID) {
		return nil, fmt.Errorf("explain: endpoint %q does not report update %q", endpointID, updateID)
	}
	return ep, nil
}

// ringCitation cites ring k, the first of the client's rings whose select
// matches the endpoint, and gives the state of its window at the planning
// time.
func (cp *clientPlan) ringCitation(k int) (*Citation, *WindowState) {
	r := cp.rings[k]
	ring := &Citation{Kind: "ring", Name: r.ring.Name, Rule: r.ring.Pos.Rule(), Detail: fmt.Sprintf("ring %d of %d, the first whose select matches", k+1, len(cp.rings))}
	window := &WindowState{Name: r.window.Name, Rule: r.window.Pos.Rule(), Open: r.open}
	if r.open {
		window.Closes = timePtr(r.end)
	}
	if !r.next.IsZero() {
		window.NextOpen = timePtr(r.next)
	}
	return ring, window
}

// holdCitations cites the first unexpired exclusion holding up on ep and
// the active freeze covering ep; each is nil when there is none.
func (cp *clientPlan) holdCitations(up *updatePlan, ep *protocol.Endpoint, info *endpointInfo) (exclusion, freeze *Citation) {
	if k := cp.exclusion(up, ep); k >= 0 {
		e := &cp.c.Exclusions[k]
		exclusion = &Citation{Kind: "exclusion", Name: cmpOr(e.Update, e.Source+":"+cmpOr(e.Match, "*")), Rule: e.Pos.Rule(), Detail: exclusionReason(e, cp.loc), At: timePtr(e.Until)}
	}
	if info.freeze >= 0 {
		f := &cp.c.Freezes[info.freeze]
		freeze = &Citation{Kind: "freeze", Rule: f.Pos.Rule(), Detail: f.Reason, At: timePtr(f.Until)}
	}
	return exclusion, freeze
}

// resumeCitation cites the resume entry that keeps the pair of up on
// the endpoint (info, last seen at lastSeen, with failure f) from being
// halted or failed; or, when none does, the first entry naming the
// update, saying it changes nothing here; nil when no entry names it.
func (p *planner) resumeCitation(cp *clientPlan, up *updatePlan, u *protocol.Update, info *endpointInfo, lastSeen time.Time, f failure) *Citation {
	if len(up.resumes) == 0 {
		return nil
	}
	k, detail := up.resumes[0], ""
	if info.ring >= 0 {
		ring := &cp.rings[info.ring]
		rp := &up.rings[info.ring]
		switch r := p.resumedBy(cp, up, rp, ring, u, info.ring, lastSeen, f); {
		case r >= 0 && rp.resumed == r:
			k, detail = r, "without it, failures would halt the rollout in this ring"
		case r >= 0:
			k, detail = r, "without it, this endpoint's failed attempts would hold the update back"
		}
	}
	r := &cp.c.Resume[k]
	what := "failures before " + localStamp(r.After, cp.loc) + " are forgiven"
	if r.Ring != "" {
		what += " in ring " + r.Ring
	}
	if detail == "" {
		detail = "it changes nothing here"
	}
	return &Citation{Kind: "resume", Name: cmpOr(r.Update, r.Source+":"+cmpOr(r.Match, "*")), Rule: r.Pos.Rule(),
		Detail: what + "; " + detail, At: timePtr(r.After)}
}

// rebootCitation says what the endpoint's agent last reported of its
// reboot: pending since when, the deferrals used of those the ring's
// policy allows, and when it is scheduled, in the client's time zone.
// The ring (k, -1 for none) gives the policy. Nil when nothing is pending
// or planned.
func (cp *clientPlan) rebootCitation(ep *protocol.Endpoint, k int) *Citation {
	s := ep.Reboot
	if s == nil && !ep.RebootPending {
		return nil
	}
	if s == nil {
		s = &protocol.RebootState{}
	}
	if !ep.RebootPending && s.PendingSince.IsZero() && s.ScheduledAt.IsZero() {
		return nil
	}
	c := &Citation{Kind: "reboot", Name: s.Mode}
	var allowed int
	if k >= 0 {
		r := cp.rings[k].ring
		c.Rule = r.Pos.Rule()
		if r.Reboot == schema.RebootPrompt && ep.Reboot != nil {
			allowed = r.RebootOptions.Deferrals
		}
		if c.Name == "" {
			c.Name = string(r.Reboot)
		}
	}
	var parts []string
	switch {
	case !s.PendingSince.IsZero():
		parts = append(parts, "reboot pending since "+localStamp(s.PendingSince, cp.loc))
	case ep.RebootPending:
		parts = append(parts, "reboot pending")
	default:
		parts = append(parts, "no reboot pending")
	}
	switch {
	case allowed > 0 && (s.Mode == "" || s.Mode == protocol.RebootPrompt):
		parts = append(parts, fmt.Sprintf("%d of %d deferrals used", s.DeferralsUsed, allowed))
	case s.DeferralsUsed > 0:
		parts = append(parts, fmt.Sprintf("%d deferrals used", s.DeferralsUsed))
	}
	if !s.ScheduledAt.IsZero() {
		parts = append(parts, "scheduled at "+localStamp(s.ScheduledAt, cp.loc)+" local")
		c.At = timePtr(s.ScheduledAt.UTC())
	}
	c.Detail = strings.Join(parts, ", ")
	return c
}

func timePtr(t time.Time) *time.Time { return &t }
