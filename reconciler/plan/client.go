package plan

import (
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

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
	// report, for a client in report mode, is what its decisions that
	// would go into a job say: no job is sent, by the mode's rule.
	report *note
	// index maps an update id to its plan in ups.
	index map[string]int32
	ups   []updatePlan
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
	// emergency is the index of the client's first active emergency
	// entry naming the update (or an update that requires it), or -1.
	emergency int
	rings     []ringProgress
	// rollback is the index of the client's rollback entry naming the
	// update, or -1; rb, when it is set, is the rollback's own progress
	// through the rings (isRollback set), gated like an install.
	rollback   int
	rb         *updatePlan
	isRollback bool
}

// note is what a decision says: the rule that produced it, why, and when
// the pair can move on. Notes are built once per policy entry and shared by
// the pairs they explain, EligibleAt pointers included.
type note struct {
	rule   string
	reason string
	at     *time.Time
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
		rp.reboot, rp.hooks, rp.guards = jobPolicy(r, c.Timezone)
		cp.rings = append(cp.rings, rp)
	}
	if c.Mode == schema.ModeReport {
		cp.report = &note{reason: `mode "report": decided, but no job is sent`}
		if c.ModePos.File != "" {
			cp.report.rule = c.ModePos.Rule()
		}
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
		if info.ring >= 0 && !info.stale && cp.rollbackSelects(up, ep) {
			cp.surveyRollback(up, u, info.ring, ep.LastSeen)
		}
		if !up.desire.desired || info.ring < 0 || info.stale || cp.exclusion(up, ep) >= 0 {
			continue
		}
		rp := &up.rings[info.ring]
		rp.counted++
		switch {
		case u.Installed:
			rp.succeeded++
			// An update installed before its endpoint first reported has no
			// known install time; it was installed no earlier than its
			// release, which stands in for it (never the zero time).
			at := u.ReleasedAt(p.now)
			if u.InstalledAt != nil {
				at = *u.InstalledAt
			}
			rp.installs = append(rp.installs, at)
		case len(u.Attempts) > 0:
			if cp.failure(up, u, info.ring, ep.LastSeen).latest != nil {
				rp.failed++
				rp.unforgiven++
			} else if len(up.resumes) > 0 && cp.failureUnder(nil, u, info.ring, ep.LastSeen).latest != nil {
				rp.unforgiven++
			}
		}
	}
	if info.inFlight && info.ring >= 0 {
		cp.rings[info.ring].inFlight++
	}
	return nil
}

// attachRollback gives up its rollback progress when a rollback entry
// names it, by its id.
func (cp *clientPlan) attachRollback(up *updatePlan) error {
	for k := range cp.c.Rollback {
		r := &cp.c.Rollback[k]
		if r.Update != up.id {
			continue
		}
		up.rollback = k
		rb := &updatePlan{id: "rollback:" + up.id, update: up.update, emergency: -1, rollback: k, isRollback: true,
			desire: desire{desired: true, note: note{rule: r.Pos.Rule(), reason: rollbackReason(r)}},
			rings:  make([]ringProgress, len(cp.rings))}
		for j := range cp.c.Resume {
			res := &cp.c.Resume[j]
			ok, err := names(res.Update, res.Source, res.Match, up.update)
			if err != nil {
				return fmt.Errorf("resume at %s: %w", res.Pos, err)
			}
			if ok {
				rb.resumes = append(rb.resumes, j)
			}
		}
		up.rb = rb
		return nil
	}
	return nil
}

func rollbackReason(r *schema.Rollback) string {
	s := "rollback: " + r.Reason
	if r.Ticket != "" {
		s += " (" + r.Ticket + ")"
	}
	return s
}

// rollbackSelects reports whether up has a rollback entry that selects ep.
func (cp *clientPlan) rollbackSelects(up *updatePlan, ep *protocol.Endpoint) bool {
	return up.rb != nil && selects(&cp.c.Rollback[up.rollback].Select, ep)
}

// rollbackView is u with only the attempts of rollback jobs, their action
// cleared, so that the failure rules judge a rollback by its own
// attempts; it is never installed, since for a rollback an installed
// update is the work still to do.
func rollbackView(u *protocol.Update) *protocol.Update {
	ru := *u
	ru.Installed, ru.Attempts = false, nil
	for _, a := range u.Attempts {
		if a.Action == protocol.ActionRollback {
			a.Action = ""
			ru.Attempts = append(ru.Attempts, a)
		}
	}
	return &ru
}

// surveyRollback counts u, reported by an endpoint of ring the rollback
// entry of up selects, in the rollback's progress: endpoints that had the
// update (installed now, or a rollback attempted) count; those without it
// now succeeded, at their rollback's time; those whose rollback failed
// failed.
func (cp *clientPlan) surveyRollback(up *updatePlan, u *protocol.Update, ring int, lastSeen time.Time) {
	ru := rollbackView(u)
	rp := &up.rb.rings[ring]
	rp.selected++
	if !u.Installed && len(ru.Attempts) == 0 {
		return
	}
	rp.counted++
	if !u.Installed {
		rp.succeeded++
		var at time.Time
		for _, a := range ru.Attempts {
			if a.Result == protocol.ResultSucceeded && a.At.After(at) {
				at = a.At
			}
		}
		rp.installs = append(rp.installs, at)
		return
	}
	if cp.failure(up.rb, ru, ring, lastSeen).latest != nil {
		rp.failed++
		rp.unforgiven++
	}
}

func (cp *clientPlan) newUpdatePlan(u *protocol.Update, now time.Time) (updatePlan, error) {
	d, err := desireFor(&cp.c.Baseline, u, now)
	if err != nil {
		return updatePlan{}, err
	}
	up := updatePlan{id: u.ID, desire: d, update: u, emergency: -1, rollback: -1}
	if err := cp.attachRollback(&up); err != nil {
		return updatePlan{}, err
	}
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
	for k := range cp.c.Emergency {
		e := &cp.c.Emergency[k]
		if up.emergency < 0 && e.Active(now) && (e.Update == u.ID || e.Update == u.Name) {
			up.emergency = k
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
			if dep.emergency < 0 {
				// What an emergency update needs goes with it.
				dep.emergency = by.emergency
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
