package plan

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

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
	// reboot, hooks and guards are what the ring's jobs carry, built
	// once per ring.
	reboot *protocol.RebootPolicy
	hooks  *protocol.JobHooks
	guards *protocol.JobGuards
	// inFlight counts the ring's endpoints holding an open job; granted the
	// new jobs this run gave out.
	inFlight int
	granted  int
}

// ringProgress is one update's progress through one ring.
type ringProgress struct {
	counted, succeeded, failed int
	// unforgiven counts the endpoints that would count as failed had no
	// resume entry forgiven their failures.
	unforgiven int
	// resumed is the index of the client's resume entry that lifts a halt
	// the ring would be under without it (in it or an earlier ring), or
	// -1.
	resumed  int
	installs []time.Time
	state    RolloutState
	// known says startAt is set: the ring started then, or will once the
	// earlier ring's soak ends.
	known    bool
	started  bool
	startAt  time.Time
	passed   bool
	passedAt time.Time
	// haltedBy is the ring whose failures halt this one, or -1.
	haltedBy int
	// soakSkipped: the ring started because an emergency entry skipped
	// the earlier ring's soak, which still runs.
	soakSkipped bool
	// wait and halt are the notes of pairs waiting for or halted in the
	// ring.
	wait note
	halt note
	// short says why a started ring has not passed when minEndpoints
	// holds it, for its rollout.
	short string
	// selected counts, for a rollback, the ring's endpoints not stale that
	// its entry selects; a ring it selects none of is not held by
	// minEndpoints, since the rollback is not meant for it.
	selected int
}

// minEndpoints is what ring r asks of rp before it passes.
func (rp *ringProgress) minEndpoints(up *updatePlan, r *schema.Ring) int {
	if up.isRollback && rp.selected == 0 {
		return 0
	}
	return r.MinEndpoints
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
		passedAt, soak, ok := rp.passTime(r, rp.minEndpoints(up, r), start)
		if !ok || passedAt.After(now) {
			known, started = false, false
			continue
		}
		rp.state, rp.passed, rp.passedAt = RolloutPassed, true, passedAt
		start = passedAt.Add(soak)
		known, started = true, !start.After(now)
		if !started && up.emergency >= 0 && cp.c.Emergency[up.emergency].SkipSoak {
			start, started = passedAt, true
			if k+1 < len(up.rings) {
				up.rings[k+1].soakSkipped = true
			}
		}
	}
	cp.resumedRings(up, halted)
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
		case rp.state == RolloutInProgress && rp.counted < rp.minEndpoints(up, cp.rings[k].ring):
			r := cp.rings[k].ring
			rp.short = fmt.Sprintf("ring %s has %d of %d required reporting endpoints (minEndpoints)", r.Name, rp.counted, r.MinEndpoints)
		}
	}
}

// resumedRings marks the rings of up that a resume entry keeps running:
// without the entries, failures would halt the update from some ring on,
// and with them it is halted later (halted) or not at all (-1). Each such
// ring names the first entry naming the update that covers the ring where
// the halt would begin.
func (cp *clientPlan) resumedRings(up *updatePlan, halted int) {
	for k := range up.rings {
		up.rings[k].resumed = -1
	}
	if len(up.resumes) == 0 {
		return
	}
	from := -1
	for k := range up.rings {
		rp := &up.rings[k]
		if rp.counted > 0 && float64(rp.unforgiven)/float64(rp.counted) > cp.rings[k].ring.MaxFailures {
			from = k
			break
		}
	}
	if from < 0 || (halted >= 0 && halted <= from) {
		return
	}
	entry := -1
	for _, r := range up.resumes {
		if cp.resumeCovers(r, from) {
			entry = r
			break
		}
	}
	for k := from; k < len(up.rings) && (halted < 0 || k < halted); k++ {
		up.rings[k].resumed = entry
	}
}

// passTime is when a started ring passed, the soak that follows, and
// whether it has passed.
func (rp *ringProgress) passTime(r *schema.Ring, minEndpoints int, start time.Time) (time.Time, time.Duration, bool) {
	if rp.counted == 0 && minEndpoints == 0 {
		return start, 0, true
	}
	// The small epsilon keeps 0.95×20 at 19 despite binary rounding.
	need := max(int(math.Ceil(r.MinSuccess*float64(rp.counted)-1e-9)), minEndpoints)
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

func (cp *clientPlan) haltReason(up *updatePlan, k int) string {
	rp := &up.rings[k]
	r := cp.rings[k].ring
	return fmt.Sprintf("halted in ring %s: %d of %d endpoints failed (%s), above maxFailures %s; a resume entry lifts it",
		r.Name, rp.failed, rp.counted, percent(float64(rp.failed)/float64(rp.counted)), percent(r.MaxFailures))
}

func (cp *clientPlan) waitReason(up *updatePlan, k int) string {
	prev := cp.rings[k-1].ring
	pp := &up.rings[k-1]
	done := "installed"
	if up.isRollback {
		done = "rolled back"
	}
	if pp.passed {
		return fmt.Sprintf("ring %s waits for ring %s to soak %s after it passed at %s", cp.rings[k].ring.Name, prev.Name, days(prev.Soak), pp.passedAt.UTC().Format(time.RFC3339))
	}
	if !pp.started {
		return fmt.Sprintf("ring %s waits for ring %s, which has not started", cp.rings[k].ring.Name, prev.Name)
	}
	minEnd := pp.minEndpoints(up, prev)
	if pp.counted < minEnd {
		return fmt.Sprintf("ring %s waits: ring %s has %d of %d required reporting endpoints (seen within staleAfter, not excluded); minEndpoints keeps an empty or silent ring from passing", cp.rings[k].ring.Name, prev.Name, pp.counted, minEnd)
	}
	if pp.succeeded < minEnd && float64(pp.succeeded) >= prev.MinSuccess*float64(pp.counted)-1e-9 {
		return fmt.Sprintf("ring %s waits: ring %s has %d of %d required endpoints with the update %s (minEndpoints)", cp.rings[k].ring.Name, prev.Name, pp.succeeded, minEnd, done)
	}
	return fmt.Sprintf("ring %s waits for ring %s: %d of %d %s, needs %s", cp.rings[k].ring.Name, prev.Name, pp.succeeded, pp.counted, done, percent(prev.MinSuccess))
}

func percent(f float64) string {
	return fmt.Sprintf("%.4g%%", f*100)
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
	// Rollbacks after the installs, by update id.
	ids = ids[:0]
	for k := range cp.ups {
		if cp.ups[k].rb != nil {
			ids = append(ids, k)
		}
	}
	slices.SortFunc(ids, func(a, b int) int { return strings.Compare(cp.ups[a].id, cp.ups[b].id) })
	for _, k := range ids {
		out = append(out, cp.rollout(cp.ups[k].rb)...)
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
		ro.Reason = rp.halt.reason + rp.wait.reason + rp.short
		out[k] = ro
	}
	return out
}
