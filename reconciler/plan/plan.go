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
//     it back).
//  4. An unexpired exclusion naming the update and selecting the endpoint
//     makes it excluded.
//  5. The endpoint's ring is the first ring whose select matches; none is
//     waiting-ring.
//  6. An update in an open job is in-progress.
//  7. An update whose latest attempt failed (and is not forgiven by a resume
//     entry newer than the attempt) is failed: for good after three
//     unforgiven failures, otherwise until its ring's window next opens
//     after the attempt, when it is retried.
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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// maxFailedAttempts is how many unforgiven failed attempts make a pair
// failed until a resume entry forgives them.
const maxFailedAttempts = 3

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

// clientPlan is what the planner knows about one client.
type clientPlan struct {
	id         string
	c          *schema.Client
	loc        *time.Location
	staleAfter time.Duration
	rings      []ringPlan
	// exclusions and freezes hold what decisions say about each of the
	// client's entries, by index, built once rather than per pair.
	exclusions []note
	freezes    []note
	// index maps an update id to its plan in ups.
	index map[string]int32
	ups   []updatePlan
}

type ringPlan struct {
	ring   *schema.Ring
	window schema.Window
	loc    *time.Location
	rule   string
	// closed is the note of a pair waiting for the window, capped of one
	// waiting for a slot under maxConcurrent.
	closed note
	capped note
	open   bool
	// start and end bound the open occurrence; next is the next opening.
	start, end time.Time
	next       time.Time
	// inFlight counts the ring's endpoints holding an open job; granted the
	// new jobs this run gave out.
	inFlight int
	granted  int
}

// updatePlan is what the planner knows about one update id for one client.
type updatePlan struct {
	id     string
	desire desire
	// update is the first report of the update, whose metadata (name,
	// source, requires) the plan uses.
	update *protocol.Update
	// exclusions and resumes are the indexes of the client's entries that
	// name the update (exclusions only while unexpired).
	exclusions []int
	resumes    []int
	rings      []ringProgress
}

// ringProgress is one update's progress through one ring.
type ringProgress struct {
	counted, succeeded, failed int
	installs                   []time.Time
	state                      RolloutState
	// known says startAt is set: the ring started then, or will once the
	// earlier ring's soak ends.
	known    bool
	started  bool
	startAt  time.Time
	passed   bool
	passedAt time.Time
	// haltedBy is the ring whose failures halt this one, or -1.
	haltedBy int
	// wait and halt are the notes of pairs waiting for or halted in the
	// ring.
	wait note
	halt note
}

// note is what a decision says: the rule that produced it, why, and when
// the pair can move on. Notes are built once per policy entry and shared by
// the pairs they explain, EligibleAt pointers included.
type note struct {
	rule   string
	reason string
	at     *time.Time
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

func (p *planner) newClientPlan(id string, c *schema.Client) (*clientPlan, error) {
	loc := c.Location
	if loc == nil {
		if c.Timezone != "" && c.Timezone != "UTC" {
			return nil, fmt.Errorf("time zone %q is not loaded", c.Timezone)
		}
		loc = time.UTC
	}
	cp := &clientPlan{id: id, c: c, loc: loc, staleAfter: c.EffectiveStaleAfter(), index: map[string]int32{}}
	for k := range c.Rings {
		r := &c.Rings[k]
		w, ok := c.Windows[r.Window]
		if !ok {
			return nil, fmt.Errorf("ring %q: window %q is not defined", r.Name, r.Window)
		}
		rp := ringPlan{ring: r, window: w, loc: loc, rule: r.Pos.Rule()}
		occ, open := current(w, loc, p.now)
		// Results carry UTC times; reasons speak the client's local time.
		rp.open, rp.start, rp.end = open, occ.Start.UTC(), occ.End.UTC()
		rp.next = NextOpen(w, loc, p.now).UTC()
		rp.closed = note{rule: w.Pos.Rule(), reason: fmt.Sprintf("window %q never opens", w.Name)}
		if !rp.next.IsZero() {
			rp.closed = note{rule: w.Pos.Rule(), reason: fmt.Sprintf("window %q opens %s", w.Name, rp.next.In(loc).Format(time.RFC3339)), at: timePtr(rp.next)}
		}
		rp.capped = note{rule: rp.rule, reason: fmt.Sprintf("ring %s at maxConcurrent %d", r.Name, r.MaxConcurrent)}
		cp.rings = append(cp.rings, rp)
	}
	for k := range c.Exclusions {
		x := &c.Exclusions[k]
		cp.exclusions = append(cp.exclusions, note{rule: x.Pos.Rule(), reason: exclusionReason(x, loc), at: timePtr(x.Until)})
	}
	for k := range c.Freezes {
		f := &c.Freezes[k]
		cp.freezes = append(cp.freezes, note{rule: f.Pos.Rule(), at: timePtr(f.Until),
			reason: fmt.Sprintf("change freeze until %s: %s", f.Until.In(loc).Format(time.RFC3339), f.Reason)})
	}
	return cp, nil
}

// survey is pass one for endpoint i: its ring, staleness, freeze and open
// jobs, and its share in the ring progress of each desired update.
func (p *planner) survey(cp *clientPlan, i int) error {
	ep := p.eps[i]
	info := &p.info[i]
	info.ring, info.freeze = -1, -1
	for k := range cp.rings {
		if selects(&cp.rings[k].ring.Select, ep) {
			info.ring = k
			break
		}
	}
	info.stale = ep.LastSeen.Add(cp.staleAfter).Before(p.now)
	for k := range cp.c.Freezes {
		f := &cp.c.Freezes[k]
		if !p.now.Before(f.From) && p.now.Before(f.Until) && selects(&f.Select, ep) {
			info.freeze = k
			break
		}
	}
	for j, u := range ep.Updates {
		// prepare made a plan for every update the client's endpoints report.
		idx := cp.index[u.ID]
		p.flat[info.first+j] = idx
		if u.InFlightJob != nil {
			info.inFlight = true
		}
		up := &cp.ups[idx]
		if !up.desire.desired || info.ring < 0 || info.stale || cp.exclusion(up, ep) >= 0 {
			continue
		}
		rp := &up.rings[info.ring]
		rp.counted++
		switch {
		case u.Installed:
			rp.succeeded++
			var at time.Time
			if u.InstalledAt != nil {
				at = *u.InstalledAt
			}
			rp.installs = append(rp.installs, at)
		case cp.failure(up, u, info.ring).latest != nil:
			rp.failed++
		}
	}
	if info.inFlight && info.ring >= 0 {
		cp.rings[info.ring].inFlight++
	}
	return nil
}

func (cp *clientPlan) newUpdatePlan(u *protocol.Update, now time.Time) (updatePlan, error) {
	d, err := desireFor(&cp.c.Baseline, u, now)
	if err != nil {
		return updatePlan{}, err
	}
	up := updatePlan{id: u.ID, desire: d, update: u}
	if !d.desired {
		return up, nil
	}
	return up, cp.attach(&up, now)
}

// attach finds the exclusions and resumes naming a desired update and
// makes room for its ring progress.
func (cp *clientPlan) attach(up *updatePlan, now time.Time) error {
	u := up.update
	up.rings = make([]ringProgress, len(cp.rings))
	for k := range cp.c.Exclusions {
		x := &cp.c.Exclusions[k]
		if !now.Before(x.Until) {
			continue
		}
		ok, err := names(x.Update, x.Source, x.Match, u)
		if err != nil {
			return fmt.Errorf("exclusion at %s: %w", x.Pos, err)
		}
		if ok {
			up.exclusions = append(up.exclusions, k)
		}
	}
	for k := range cp.c.Resume {
		r := &cp.c.Resume[k]
		ok, err := names(r.Update, r.Source, r.Match, u)
		if err != nil {
			return fmt.Errorf("resume at %s: %w", r.Pos, err)
		}
		if ok {
			up.resumes = append(up.resumes, k)
		}
	}
	return nil
}

// prepare decides, before any ring progress is counted, which of the
// client's updates are desired: those a rule asks for, and then every
// update such an update requires (a servicing stack update under a
// cumulative update, say), so a job never lacks what its updates need.
// Requires are read from the first endpoint reporting the update, like
// the rest of its metadata.
func (p *planner) prepare(cp *clientPlan, eps []int) error {
	for _, i := range eps {
		for _, u := range p.eps[i].Updates {
			if _, ok := cp.index[u.ID]; ok {
				continue
			}
			up, err := cp.newUpdatePlan(u, p.now)
			if err != nil {
				return fmt.Errorf("endpoint %q: update %q: %w", p.eps[i].ID, u.ID, err)
			}
			cp.index[u.ID] = int32(len(cp.ups))
			cp.ups = append(cp.ups, up)
		}
	}
	var work []int32
	for k := range cp.ups {
		if cp.ups[k].desire.desired {
			work = append(work, int32(k))
		}
	}
	for len(work) > 0 {
		by := &cp.ups[work[len(work)-1]]
		work = work[:len(work)-1]
		for _, rid := range by.update.Requires {
			k, ok := cp.index[rid]
			if !ok || cp.ups[k].desire.desired {
				continue
			}
			dep := &cp.ups[k]
			c := &Citation{Kind: "requires", Name: by.id, Rule: by.desire.rule,
				Detail: fmt.Sprintf("required by %s (%s)", by.id, by.desire.reason)}
			dep.desire = desire{note: note{rule: c.Rule, reason: c.Detail}, desired: true, since: by.desire.since, cite: c}
			if err := cp.attach(dep, p.now); err != nil {
				return fmt.Errorf("update %q: %w", dep.id, err)
			}
			work = append(work, k)
		}
	}
	return nil
}

// exclusion returns the index of the first unexpired exclusion holding up
// on ep, or -1.
func (cp *clientPlan) exclusion(up *updatePlan, ep *protocol.Endpoint) int {
	for _, k := range up.exclusions {
		if selects(&cp.c.Exclusions[k].Select, ep) {
			return k
		}
	}
	return -1
}

// failure describes an endpoint's failed attempts at an update.
type failure struct {
	// latest is the latest attempt that succeeded or failed, when it failed
	// and no resume entry forgives it; nil otherwise.
	latest *protocol.Attempt
	// count is how many failed attempts are not forgiven.
	count int
}

// failure looks at u's attempts on an endpoint of ring. Refused attempts
// count neither way. A failure is forgiven by a resume entry naming the
// update, for every ring or this one, whose After is later than the
// attempt.
func (cp *clientPlan) failure(up *updatePlan, u *protocol.Update, ring int) failure {
	if u.Installed || len(u.Attempts) == 0 {
		return failure{}
	}
	var f failure
	var latest *protocol.Attempt
	for k := range u.Attempts {
		a := &u.Attempts[k]
		if a.Result == protocol.ResultRefused {
			continue
		}
		if latest == nil || a.At.After(latest.At) {
			latest = a
		}
		if a.Result == protocol.ResultFailed && !cp.forgiven(up, a, ring) {
			f.count++
		}
	}
	if latest != nil && latest.Result == protocol.ResultFailed && !cp.forgiven(up, latest, ring) {
		f.latest = latest
	}
	return f
}

func (cp *clientPlan) forgiven(up *updatePlan, a *protocol.Attempt, ring int) bool {
	for _, k := range up.resumes {
		r := &cp.c.Resume[k]
		if (r.Ring == "" || (ring >= 0 && r.Ring == cp.rings[ring].ring.Name)) && r.After.After(a.At) {
			return true
		}
	}
	return false
}

// gate works out each ring's state for a desired update from the counts of
// pass one.
func (cp *clientPlan) gate(up *updatePlan, now time.Time) {
	if !up.desire.desired {
		return
	}
	start := up.desire.since
	if start.After(now) {
		start = now
	}
	known, started := true, true
	halted := -1
	for k := range up.rings {
		rp := &up.rings[k]
		r := cp.rings[k].ring
		rp.haltedBy = halted
		if halted >= 0 {
			rp.state = RolloutHalted
			continue
		}
		rp.known, rp.started, rp.startAt = known, started, start
		if rp.counted > 0 && float64(rp.failed)/float64(rp.counted) > r.MaxFailures {
			halted = k
			rp.haltedBy = k
			rp.state = RolloutHalted
			continue
		}
		if !started {
			rp.state = RolloutWaiting
			known, started = false, false
			continue
		}
		rp.state = RolloutInProgress
		passedAt, soak, ok := rp.passTime(r, start)
		if !ok || passedAt.After(now) {
			known, started = false, false
			continue
		}
		rp.state, rp.passed, rp.passedAt = RolloutPassed, true, passedAt
		start = passedAt.Add(soak)
		known, started = true, !start.After(now)
	}
	for k := range up.rings {
		rp := &up.rings[k]
		switch {
		case rp.haltedBy >= 0:
			rp.halt = note{rule: cp.rings[rp.haltedBy].rule, reason: cp.haltReason(up, rp.haltedBy)}
		case !rp.started:
			rp.wait = note{rule: cp.rings[k-1].rule, reason: cp.waitReason(up, k)}
			if rp.known && !rp.startAt.IsZero() {
				rp.wait.at = timePtr(rp.startAt)
			}
		}
	}
}

// passTime is when a started ring passed, the soak that follows, and
// whether it has passed.
func (rp *ringProgress) passTime(r *schema.Ring, start time.Time) (time.Time, time.Duration, bool) {
	if rp.counted == 0 {
		return start, 0, true
	}
	// The small epsilon keeps 0.95×20 at 19 despite binary rounding.
	need := int(math.Ceil(r.MinSuccess*float64(rp.counted) - 1e-9))
	if need <= 0 {
		return start, r.Soak, true
	}
	if rp.succeeded < need {
		return time.Time{}, 0, false
	}
	slices.SortFunc(rp.installs, func(a, b time.Time) int { return a.Compare(b) })
	at := rp.installs[need-1]
	if at.Before(start) {
		at = start
	}
	return at, r.Soak, true
}

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
	missing := 0
	for _, j := range order {
		u := ep.Updates[j]
		var v verdict
		if cp == nil {
			v = verdict{d: UnknownClient, note: p.unknownNote(ep.Client)}
		} else {
			v = p.decide(cp, ep, info, &cp.ups[p.flat[info.first+j]], u)
		}
		if v.d == Missing {
			missing++
		}
		buf = append(buf, pair{u: u, v: v})
	}
	missing -= holdForRequires(buf)
	var ring *ringPlan
	if cp != nil && info.ring >= 0 {
		ring = &cp.rings[info.ring]
	}
	if missing > 0 && ring != nil && !info.inFlight && ring.ring.MaxConcurrent > 0 {
		if ring.inFlight+ring.granted >= ring.ring.MaxConcurrent {
			for k := range buf {
				if buf[k].v.d == Missing {
					buf[k].v = verdict{d: WaitingRing, note: ring.capped}
				}
			}
			missing = 0
		} else {
			ring.granted++
		}
	}
	for k := range buf {
		pr := &buf[k]
		p.counts[slot(pr.v.d)]++
		if p.watch != nil {
			p.watch(ep, pr.u, &pr.v)
		}
		if p.detail {
			p.decisions = append(p.decisions, p.pairDecision(ep, cp, info, pr))
		}
	}
	if missing > 0 && cp.c.Mode != schema.ModeReport {
		job, err := p.job(ep, ring, buf)
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
		Endpoint: ep.ID, Client: ep.Client, Update: pr.u.ID, Source: pr.u.Source, Severity: pr.u.Severity,
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
	ds := &up.desire
	if u.Installed {
		if ds.desired {
			return verdict{Installed, ds.note}
		}
		return verdict{NotApproved, ds.note}
	}
	if !ds.desired {
		return verdict{NotApproved, ds.note}
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
	if f := cp.failure(up, u, info.ring); f.latest != nil {
		if v, failed := p.failed(ring, f); failed {
			return v
		}
	}
	rp := &up.rings[info.ring]
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
	return verdict{Missing, ds.note}
}

var noRing = note{reason: "no ring selects this endpoint"}

// failed decides a pair whose latest attempt failed: failed for good after
// maxFailedAttempts, otherwise until the ring's window next opens after the
// attempt. It reports false when that opening has come and the update is
// due for a retry.
func (p *planner) failed(ring *ringPlan, f failure) (verdict, bool) {
	if f.count >= maxFailedAttempts {
		v := verdict{Failed, note{rule: ring.rule}}
		if p.detail {
			v.reason = fmt.Sprintf("failed %d times, last: %s; a resume entry newer than the last attempt retries it", f.count, cmpOr(f.latest.Error, "no error text"))
		}
		return v, true
	}
	retry := NextOpen(ring.window, ring.loc, f.latest.At).UTC()
	if !retry.IsZero() && !p.now.Before(retry) {
		return verdict{}, false
	}
	v := verdict{Failed, note{rule: ring.closed.rule}}
	if !retry.IsZero() {
		v.at = timePtr(retry)
	}
	if p.detail {
		v.reason = fmt.Sprintf("failed at %s: %s; retried when window %q next opens", f.latest.At.UTC().Format(time.RFC3339), cmpOr(f.latest.Error, "no error text"), ring.window.Name)
	}
	return v, true
}

func exclusionReason(x *schema.Exclusion, loc *time.Location) string {
	s := "exclusion: " + x.Reason
	if x.Ticket != "" {
		s += " (" + x.Ticket + ")"
	}
	return s + " " + untilText(x.Until, loc)
}

// untilText says when an exclusive end time t comes, in the client's zone,
// the way the policy wrote it: "through 2026-12-31" for the midnight that
// ends a date, else "until 2026-12-31 15:00 CST".
func untilText(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 {
		return "through " + t.AddDate(0, 0, -1).Format(time.DateOnly)
	}
	return "until " + t.Format("2006-01-02 15:04 MST")
}

func (cp *clientPlan) haltReason(up *updatePlan, k int) string {
	rp := &up.rings[k]
	r := cp.rings[k].ring
	return fmt.Sprintf("halted in ring %s: %d of %d endpoints failed (%s), above maxFailures %s; a resume entry lifts it",
		r.Name, rp.failed, rp.counted, percent(float64(rp.failed)/float64(rp.counted)), percent(r.MaxFailures))
}

func (cp *clientPlan) waitReason(up *updatePlan, k int) string {
	prev := cp.rings[k-1].ring
	pp := &up.rings[k-1]
	if pp.passed {
		return fmt.Sprintf("ring %s waits for ring %s to soak %s after it passed at %s", cp.rings[k].ring.Name, prev.Name, days(prev.Soak), pp.passedAt.UTC().Format(time.RFC3339))
	}
	if !pp.started {
		return fmt.Sprintf("ring %s waits for ring %s, which has not started", cp.rings[k].ring.Name, prev.Name)
	}
	return fmt.Sprintf("ring %s waits for ring %s: %d of %d installed, needs %s", cp.rings[k].ring.Name, prev.Name, pp.succeeded, pp.counted, percent(prev.MinSuccess))
}

func percent(f float64) string {
	return fmt.Sprintf("%.4g%%", f*100)
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

// job plans the job of endpoint ep from its missing pairs.
func (p *planner) job(ep *protocol.Endpoint, ring *ringPlan, pairs []pair) (Job, error) {
	var ups []*protocol.Update
	for k := range pairs {
		if pairs[k].v.d == Missing {
			ups = append(ups, pairs[k].u)
		}
	}
	ids, err := requiresOrder(ups)
	if err != nil {
		return Job{}, fmt.Errorf("endpoint %q: %w", ep.ID, err)
	}
	j := Job{
		Endpoint: ep.ID, Client: ep.Client, Ring: ring.ring.Name, Updates: ids,
		NotAfter: ring.end, Reboot: ring.ring.Reboot, Revision: p.fleet.Revision,
	}
	if ring.ring.RebootDeadline > 0 {
		j.RebootDeadline = ring.ring.RebootDeadline.String()
	}
	j.IdempotencyKey = idempotencyKey(ep.ID, ids, p.fleet.Revision, ring.end, refusedIn(ups, ring.start, ring.end))
	return j, nil
}

// maxRefusedRetries is how many times in one window occurrence an update
// whose job the agent refused is planned again at once. An agent refuses a
// job it cannot trust: most causes persist (a job signed by another key, a
// window already over), but a job numbered below what the agent has seen
// (a controller restored from an older backup) goes through once the
// number is corrected. The cap keeps a refusal that persists from turning
// into a stream of jobs; after it the updates wait for the next window.
const maxRefusedRetries = 2

// refusedIn counts the jobs, up to maxRefusedRetries, that refused any of
// ups during the window occurrence [start, end).
func refusedIn(ups []*protocol.Update, start, end time.Time) int {
	var jobs []string
	for _, u := range ups {
		for _, a := range u.Attempts {
			if a.Result == protocol.ResultRefused && !a.At.Before(start) && a.At.Before(end) && !slices.Contains(jobs, a.Job) {
				jobs = append(jobs, a.Job)
			}
		}
	}
	return min(len(jobs), maxRefusedRetries)
}

// idempotencyKey is the hex SHA-256 of the endpoint id, the update ids in
// order, the revision and the end of the window occurrence, each ended by a
// NUL byte so that no two lists hash alike, and of the number of refused
// jobs (see refusedIn) when there are any. Re-planning the same work in the
// same window gives the same key, so neither the store nor the agent runs
// it twice; a retry in a later window (after a failure, or a job that
// expired unrun), or after a refusal, is a new job with a new key, which
// the agent must not answer from its record of the first one.
func idempotencyKey(endpoint string, updates []string, revision string, windowEnd time.Time, refused int) string {
	h := sha256.New()
	h.Write([]byte(endpoint))
	h.Write([]byte{0})
	for _, id := range updates {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	h.Write([]byte{0})
	h.Write([]byte(revision))
	h.Write([]byte{0})
	h.Write([]byte(windowEnd.UTC().Format(time.RFC3339)))
	if refused > 0 {
		h.Write([]byte{0})
		h.Write([]byte("refused " + strconv.Itoa(refused)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requiresOrder orders updates so that each comes after the updates it
// requires, breaking ties by id. Requires naming an update outside the list
// (installed, absent or not due) are ignored. A cycle is an error that names
// it.
func requiresOrder(ups []*protocol.Update) ([]string, error) {
	byID := make(map[string]*protocol.Update, len(ups))
	for _, u := range ups {
		byID[u.ID] = u
	}
	done := make(map[string]bool, len(ups))
	ready := func(u *protocol.Update) bool {
		for _, r := range u.Requires {
			if _, in := byID[r]; in && !done[r] && r != u.ID {
				return false
			}
		}
		return true
	}
	slices.SortFunc(ups, func(a, b *protocol.Update) int { return strings.Compare(a.ID, b.ID) })
	out := make([]string, 0, len(ups))
	for len(out) < len(ups) {
		progress := false
		// The first ready update in id order goes next, then the scan
		// starts again so that a newly freed lower id goes before higher.
		for _, u := range ups {
			if !done[u.ID] && ready(u) {
				done[u.ID] = true
				out = append(out, u.ID)
				progress = true
				break
			}
		}
		if !progress {
			return nil, fmt.Errorf("requires cycle: %s", cycle(ups, byID, done))
		}
	}
	return out, nil
}

// cycle finds a requires cycle among the updates not done, starting at the
// lowest id and following the lowest pending requirement.
func cycle(ups []*protocol.Update, byID map[string]*protocol.Update, done map[string]bool) string {
	var at *protocol.Update
	for _, u := range ups {
		if !done[u.ID] {
			at = u
			break
		}
	}
	seen := map[string]int{}
	var path []string
	for {
		if k, ok := seen[at.ID]; ok {
			return strings.Join(append(path[k:], at.ID), " -> ")
		}
		seen[at.ID] = len(path)
		path = append(path, at.ID)
		var nextID string
		for _, r := range at.Requires {
			if _, in := byID[r]; in && !done[r] && (nextID == "" || r < nextID) {
				nextID = r
			}
		}
		at = byID[nextID]
	}
}

// result assembles the sorted Result.
func (p *planner) result() *Result {
	res := &Result{Revision: p.fleet.Revision, Now: p.now, Summary: make(map[Decision]int, len(AllDecisions)), Jobs: []Job{}, Rollouts: []Rollout{}}
	for _, d := range AllDecisions {
		res.Summary[d] = p.counts[slot(d)]
	}
	slices.SortFunc(p.jobs, func(a, b plannedJob) int {
		return cmp.Or(strings.Compare(a.job.Client, b.job.Client), cmp.Compare(a.ring, b.ring), strings.Compare(a.job.Endpoint, b.job.Endpoint))
	})
	for _, j := range p.jobs {
		res.Jobs = append(res.Jobs, j.job)
	}
	for _, id := range p.order {
		res.Rollouts = p.clients[id].rollouts(res.Rollouts)
	}
	res.Decisions = p.decisions
	return res
}

// rollouts appends the ring progress of every desired update of the client.
func (cp *clientPlan) rollouts(out []Rollout) []Rollout {
	ids := make([]int, 0, len(cp.ups))
	for k := range cp.ups {
		if cp.ups[k].desire.desired {
			ids = append(ids, k)
		}
	}
	slices.SortFunc(ids, func(a, b int) int { return strings.Compare(cp.ups[a].id, cp.ups[b].id) })
	for _, k := range ids {
		out = append(out, cp.rollout(&cp.ups[k])...)
	}
	return out
}

// rollout is the progress of one desired update through each ring.
func (cp *clientPlan) rollout(up *updatePlan) []Rollout {
	out := make([]Rollout, len(up.rings))
	for k := range up.rings {
		rp := &up.rings[k]
		r := cp.rings[k].ring
		ro := Rollout{
			Client: cp.id, Update: up.id, Ring: r.Name, Counted: rp.counted, Succeeded: rp.succeeded, Failed: rp.failed,
			State: rp.state, Rule: r.Pos.Rule(),
		}
		if rp.counted > 0 {
			ro.Share = float64(rp.succeeded) / float64(rp.counted)
			ro.FailureShare = float64(rp.failed) / float64(rp.counted)
		}
		if rp.known && rp.haltedBy < 0 && !rp.startAt.IsZero() {
			ro.EligibleAt = timePtr(rp.startAt)
		}
		if rp.passed {
			t := rp.passedAt
			ro.PassedAt = &t
		}
		ro.Reason = rp.halt.reason + rp.wait.reason
		out[k] = ro
	}
	return out
}

// numDecisions is len(AllDecisions).
const numDecisions = 10

// slot is the place of d in AllDecisions; a switch is cheaper than a map
// for the millions of pairs a large fleet has.
func slot(d Decision) int {
	switch d {
	case Installed:
		return 0
	case Missing:
		return 1
	case InProgress:
		return 2
	case Failed:
		return 3
	case Halted:
		return 4
	case WaitingRing:
		return 5
	case WaitingWindow:
		return 6
	case Excluded:
		return 7
	case NotApproved:
		return 8
	}
	return 9
}
