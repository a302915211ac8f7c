package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/version"
	"github.com/patchline/patchline/schema"
)

// pair is one decided (endpoint, update) pair while its endpoint is being
// finished.
type pair struct {
	u *protocol.Update
	v verdict
}

// verdict is a decision and the note that explains it.
type verdict struct {
	d Decision
	note
}

// decideEndpoint is pass two for endpoint i: it decides each of its updates
// in id order, applies the ring's maxConcurrent cap and plans its job.
func (p *planner) decideEndpoint(i int, buf []pair) ([]pair, error) {
	ep := p.eps[i]
	info := &p.info[i]
	cp := p.clients[ep.Client]
	order := p.updateOrder(ep)
	missing, rollbacks := 0, 0
	for _, j := range order {
		u := ep.Updates[j]
		var v verdict
		if cp == nil {
			v = verdict{d: UnknownClient, note: p.unknownNote(ep.Client)}
		} else {
			v = p.decide(cp, ep, info, &cp.ups[p.flat[info.first+j]], u)
		}
		switch v.d {
		case Missing:
			missing++
		case Rollback:
			rollbacks++
		}
		buf = append(buf, pair{u: u, v: v})
	}
	missing -= holdForRequires(buf)
	var ring *ringPlan
	if cp != nil && info.ring >= 0 {
		ring = &cp.rings[info.ring]
	}
	if missing+rollbacks > 0 && ring != nil && !info.inFlight && ring.ring.MaxConcurrent > 0 {
		if ring.inFlight+ring.granted >= ring.ring.MaxConcurrent {
			for k := range buf {
				if buf[k].v.d == Missing || buf[k].v.d == Rollback {
					buf[k].v = verdict{d: WaitingRing, note: ring.capped}
				}
			}
			missing, rollbacks = 0, 0
		} else {
			ring.granted++
		}
	}
	report := cp != nil && cp.report != nil && p.detail
	for k := range buf {
		pr := &buf[k]
		if report && (pr.v.d == Missing || pr.v.d == Rollback) {
			// The mode is what decides that nothing is sent.
			pr.v.note = note{rule: cmpOr(cp.report.rule, pr.v.rule), at: pr.v.at, reason: cp.report.reason + "; " + pr.v.reason}
		}
		p.counts[slot(pr.v.d)]++
		if p.watch != nil {
			p.watch(ep, pr.u, &pr.v)
		}
		if p.detail {
			p.decisions = append(p.decisions, p.pairDecision(ep, cp, info, pr))
		}
	}
	for _, want := range []Decision{Missing, Rollback} {
		if (want == Missing && missing == 0) || (want == Rollback && rollbacks == 0) || cp.c.Mode == schema.ModeReport {
			continue
		}
		job, err := p.job(ep, cp, ring, buf, want)
		if err != nil {
			return buf, err
		}
		p.jobs = append(p.jobs, plannedJob{ring: info.ring, job: job})
	}
	return buf, nil
}

// updateOrder returns the indexes of ep's updates, in id order when
// decisions are kept; counts and jobs do not depend on the order.
func (p *planner) updateOrder(ep *protocol.Endpoint) []int {
	if cap(p.order1) < len(ep.Updates) {
		p.order1 = make([]int, len(ep.Updates))
	}
	order := p.order1[:len(ep.Updates)]
	for j := range order {
		order[j] = j
	}
	if p.detail && !slices.IsSortedFunc(ep.Updates, func(a, b *protocol.Update) int { return strings.Compare(a.ID, b.ID) }) {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(ep.Updates[a].ID, ep.Updates[b].ID) })
	}
	return order
}

func (p *planner) pairDecision(ep *protocol.Endpoint, cp *clientPlan, info *endpointInfo, pr *pair) PairDecision {
	d := PairDecision{
		Endpoint: ep.ID, Client: ep.Client, Update: pr.u.ID, Source: pr.u.Source, Severity: pr.u.EffectiveSeverity(),
		Decision: pr.v.d, Reason: pr.v.reason,
	}
	if cp != nil && info.ring >= 0 {
		d.Ring = cp.rings[info.ring].ring.Name
	}
	d.Rule, d.EligibleAt = pr.v.rule, pr.v.at
	return d
}

func (p *planner) unknownNote(client string) note {
	n, ok := p.unknown[client]
	if !ok {
		n = note{reason: fmt.Sprintf("client %q is not in the fleet repository", client)}
		if p.unknown == nil {
			p.unknown = map[string]note{}
		}
		p.unknown[client] = n
	}
	return n
}

// decide applies the rules of the package comment, in order, to one pair.
func (p *planner) decide(cp *clientPlan, ep *protocol.Endpoint, info *endpointInfo, up *updatePlan, u *protocol.Update) verdict {
	if cp.rollbackSelects(up, ep) {
		return p.decideRollback(cp, ep, info, up, u)
	}
	ds := &up.desire
	if u.Installed {
		if ds.desired {
			if a := lastAttempt(u); p.detail && a != nil && a.Result == protocol.ResultUnknown {
				return verdict{Installed, cp.interruptedNote(ds.note, a, Installed, ep.LastSeen)}
			}
			return verdict{Installed, ds.note}
		}
		if n, ok := unavailable(&cp.c.Baseline, ep, u); ok {
			return verdict{Unavailable, n}
		}
		return verdict{NotApproved, ds.note}
	}
	if !ds.desired {
		return verdict{NotApproved, ds.note}
	}
	if v, ok := p.unoffered(ds, u); ok {
		return v
	}
	if k := cp.exclusion(up, ep); k >= 0 {
		return verdict{Excluded, cp.exclusions[k]}
	}
	if info.ring < 0 {
		return verdict{WaitingRing, noRing}
	}
	ring := &cp.rings[info.ring]
	if u.InFlightJob != nil {
		v := verdict{InProgress, ds.note}
		if p.detail {
			v.reason = "in job " + *u.InFlightJob
		}
		return v
	}
	f := cp.failure(up, u, info.ring, ep.LastSeen)
	switch {
	case f.pending != nil:
		v := verdict{InProgress, ds.note}
		if p.detail {
			v.note = cp.interruptedNote(ds.note, f.pending, InProgress, ep.LastSeen)
		}
		return v
	case f.latest != nil:
		if v, failed := p.failed(ring, f); failed {
			return v
		}
	case f.deferred != nil:
		if v, held := p.deferredByGuard(ring, f.deferred); held {
			return v
		}
	}
	rp := &up.rings[info.ring]
	var em *schema.Emergency
	if up.emergency >= 0 {
		em = &cp.c.Emergency[up.emergency]
	}
	switch {
	case rp.haltedBy >= 0:
		return verdict{Halted, rp.halt}
	case !rp.started:
		return verdict{WaitingRing, rp.wait}
	case info.freeze >= 0 && (em == nil || !em.IgnoreFreezes):
		return verdict{WaitingWindow, cp.freezes[info.freeze]}
	case !ring.open && (em == nil || !em.IgnoreWindows):
		return verdict{WaitingWindow, ring.closed}
	}
	if em != nil && (rp.soakSkipped || info.freeze >= 0 || !ring.open) {
		v := verdict{Missing, note{rule: em.Pos.Rule(), at: ds.at}}
		if p.detail {
			v.reason = cp.emergencyReason(em, rp.soakSkipped, info.freeze >= 0, !ring.open) + "; " + ds.reason
		}
		return v
	}
	if f.interrupted != nil && p.detail {
		return verdict{Missing, cp.interruptedNote(ds.note, f.interrupted, Missing, ep.LastSeen)}
	}
	if p.detail && len(up.resumes) > 0 {
		if k := p.resumedBy(cp, up, rp, ring, u, info.ring, ep.LastSeen, f); k >= 0 {
			return verdict{Missing, cp.resumeNote(k, ds.note)}
		}
	}
	return verdict{Missing, ds.note}
}

// resumedBy returns the resume entry without which a pair decided missing
// would be halted or failed, or -1: the entry that lifts the halt of its
// ring (rp), else the one that forgives its own latest failure when,
// unforgiven, that failure would still hold the pair back. f is the
// pair's failure under the resume entries.
func (p *planner) resumedBy(cp *clientPlan, up *updatePlan, rp *ringProgress, ring *ringPlan, u *protocol.Update, k int, lastSeen time.Time, f failure) int {
	if rp.resumed >= 0 {
		return rp.resumed
	}
	if f.latest != nil || len(u.Attempts) == 0 {
		return -1
	}
	raw := cp.failureUnder(nil, u, k, lastSeen)
	if raw.latest == nil {
		return -1
	}
	if _, held := p.failed(ring, raw); !held {
		return -1
	}
	return cp.forgiving(up.resumes, raw.latest, k)
}

// resumeNote is the note of a pair that runs because resume entry k
// forgave failures: the entry's rule, and why the pair was desired.
func (cp *clientPlan) resumeNote(k int, desire note) note {
	r := &cp.c.Resume[k]
	where := ""
	if r.Ring != "" {
		where = " in ring " + r.Ring
	}
	return note{rule: r.Pos.Rule(), at: desire.at,
		reason: fmt.Sprintf("resumed%s: failures before %s are forgiven; %s", where, localStamp(r.After, cp.loc), desire.reason)}
}

// decideRollback decides a pair a rollback entry selects: removed, it is
// held (excluded) while the entry stands; installed, it is rolled back
// ring by ring, under the same soaks, windows, freezes, halts and
// failures as an install, judged by the rollback's own attempts.
func (p *planner) decideRollback(cp *clientPlan, ep *protocol.Endpoint, info *endpointInfo, up *updatePlan, u *protocol.Update) verdict {
	rb := up.rb
	if !u.Installed {
		n := rb.desire.note
		if p.detail {
			n.reason = "rolled back: " + strings.TrimPrefix(n.reason, "rollback: ") + "; not installed again while the rollback entry stands"
		}
		return verdict{Excluded, n}
	}
	if info.ring < 0 {
		return verdict{WaitingRing, noRing}
	}
	ring := &cp.rings[info.ring]
	if u.InFlightJob != nil {
		v := verdict{InProgress, rb.desire.note}
		if p.detail {
			v.reason = "in job " + *u.InFlightJob + "; " + rb.desire.reason
		}
		return v
	}
	f := cp.failure(rb, rollbackView(u), info.ring, ep.LastSeen)
	switch {
	case f.pending != nil:
		v := verdict{InProgress, rb.desire.note}
		if p.detail {
			v.note = cp.interruptedNote(rb.desire.note, f.pending, InProgress, ep.LastSeen)
		}
		return v
	case f.latest != nil:
		if v, failed := p.failed(ring, f); failed {
			if p.detail {
				v.reason = "rollback " + v.reason
			}
			return v
		}
	case f.deferred != nil:
		if v, held := p.deferredByGuard(ring, f.deferred); held {
			return v
		}
	}
	rp := &rb.rings[info.ring]
	switch {
	case rp.haltedBy >= 0:
		return verdict{Halted, rp.halt}
	case !rp.started:
		return verdict{WaitingRing, rp.wait}
	case info.freeze >= 0:
		return verdict{WaitingWindow, cp.freezes[info.freeze]}
	case !ring.open:
		return verdict{WaitingWindow, ring.closed}
	}
	return verdict{Rollback, rb.desire.note}
}

// emergencyReason says what emergency entry em let a pair through: the
// soak of the earlier ring, a freeze, a closed window.
func (cp *clientPlan) emergencyReason(em *schema.Emergency, soak, freeze, closed bool) string {
	var through []string
	if soak {
		through = append(through, "the earlier ring's soak")
	}
	if freeze {
		through = append(through, "a change freeze")
	}
	if closed {
		through = append(through, "the closed window")
	}
	return fmt.Sprintf("emergency: %s %s; through %s", em.Reason, untilText(em.Until, cp.loc), strings.Join(through, " and "))
}

var noRing = note{reason: "no ring selects this endpoint"}

// unavailable reports whether installed, a package ep has installed, falls
// short of a requirement of b that names it by source, name and minimum
// version, while no update ep reports of that package meets it: no job can
// bring the endpoint into line. The note says what is installed, what is
// required and what is available.
func unavailable(b *schema.Baseline, ep *protocol.Endpoint, installed *protocol.Update) (note, bool) {
	for i := range b.Require {
		r := &b.Require[i]
		if r.ID != "" || r.MinVersion == "" || r.Source != installed.Source {
			continue
		}
		if ok, err := glob(r.Match, installed.Name); !ok || err != nil {
			// A bad glob is reported by desireFor, which runs first.
			continue
		}
		if version.Compare(installed.Source, installed.Version, r.MinVersion) >= 0 {
			continue
		}
		var available []string
		met := false
		for _, u := range ep.Updates {
			if u.Source != installed.Source || u.Name != installed.Name || u.Installed {
				continue
			}
			available = append(available, u.Version)
			if version.Compare(u.Source, u.Version, r.MinVersion) >= 0 {
				met = true
			}
		}
		if met {
			continue
		}
		offer := "no newer version is available to the endpoint"
		if len(available) > 0 {
			slices.Sort(available)
			offer = "available: " + strings.Join(available, ", ") + ", below it too"
		}
		return note{rule: r.Pos.Rule(), reason: fmt.Sprintf("required %s; installed %s %s; %s",
			requirementName(r), installed.Name, installed.Version, offer)}, true
	}
	return note{}, false
}

// holdForRequires keeps out of the job every missing update that requires
// an update the endpoint has not installed and that is not in the job
// either (its own ring gating, a window or an exclusion holds it): the
// install would fail. The held update waits for it. It returns how many
// pairs it held.
func holdForRequires(buf []pair) int {
	byID := make(map[string]int, len(buf))
	for k := range buf {
		byID[buf[k].u.ID] = k
	}
	held := 0
	for changed := true; changed; {
		changed = false
		for k := range buf {
			if buf[k].v.d != Missing {
				continue
			}
			for _, rid := range buf[k].u.Requires {
				r, ok := byID[rid]
				if !ok || buf[r].u.Installed || buf[r].v.d == Missing {
					continue
				}
				buf[k].v = verdict{d: WaitingRing, note: note{rule: buf[r].v.rule, at: buf[r].v.at,
					reason: fmt.Sprintf("waits for %s, which it requires (%s)", rid, buf[r].v.d)}}
				held++
				changed = true
				break
			}
		}
	}
	return held
}
