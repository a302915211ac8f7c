package plan

import (
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
)

// maxFailedAttempts is how many unforgiven failed attempts make a pair
// failed until a resume entry forgives them.
const maxFailedAttempts = 3

// failure describes what an endpoint's attempts at an update say of it.
//
// An attempt whose outcome is unknown (the agent stopped while the job
// was installing) is judged by the endpoint's inventory: until a report
// comes after it, nobody knows whether the update went in, so the pair
// waits (pending); installed is installed; still missing, the first such
// attempt is retried at once and is not a failure, while a second one (the
// same update interrupted again) counts as a failure like a failed attempt.
type failure struct {
	// latest is the latest attempt that succeeded, failed or ended
	// unknown, when it counts as a failure and no resume entry forgives
	// it; nil otherwise.
	latest *protocol.Attempt
	// count is how many failures are not forgiven: failed attempts, and
	// every unknown outcome after the first.
	count int
	// interrupted is the latest attempt when its outcome is unknown, an
	// inventory since shows the update still missing, and it is the
	// update's first unforgiven interruption: retried without waiting.
	interrupted *protocol.Attempt
	// pending is the latest attempt when its outcome is unknown and no
	// inventory report has come since: no job until one does, so an
	// update the interrupted job did install is not installed again.
	pending *protocol.Attempt
	// interruptions is how many unknown outcomes are not forgiven.
	interruptions int
	// deferred is the latest attempt when a guard process kept its job
	// from starting (protocol.ResultDeferredByGuard): neither success nor
	// failure, retried when the ring's window next opens after it.
	deferred *protocol.Attempt
}

// failure looks at u's attempts on an endpoint of ring whose last
// inventory report came at lastSeen. Refused attempts count neither way.
// A failure is forgiven by a resume entry naming the update, for every
// ring or this one, whose After is later than the attempt.
func (cp *clientPlan) failure(up *updatePlan, u *protocol.Update, ring int, lastSeen time.Time) failure {
	return cp.failureUnder(up.resumes, u, ring, lastSeen)
}

// failureUnder is failure with the resume entries resumes (indexes into
// the client's); with none, it says what the attempts would mean had no
// resume entry been written, which is how a decision finds the entry that
// changed it.
func (cp *clientPlan) failureUnder(resumes []int, u *protocol.Update, ring int, lastSeen time.Time) failure {
	if u.Installed || len(u.Attempts) == 0 {
		return failure{}
	}
	var f failure
	var latest *protocol.Attempt
	for k := range u.Attempts {
		a := &u.Attempts[k]
		// A rollback's attempts are judged apart (rollbackView).
		if a.Result == protocol.ResultRefused || a.Action == protocol.ActionRollback {
			continue
		}
		if latest == nil || a.At.After(latest.At) {
			latest = a
		}
		switch {
		case cp.forgiving(resumes, a, ring) >= 0:
		case a.Result == protocol.ResultFailed, a.Result == protocol.ResultHookFailed:
			f.count++
		case a.Result == protocol.ResultUnknown:
			f.interruptions++
		}
	}
	if latest == nil {
		return f
	}
	if latest.Result == protocol.ResultDeferredByGuard {
		// A deferral is no failure, and forgives none: what came before
		// it still counts.
		f.deferred = latest
		return f
	}
	forgiven := cp.forgiving(resumes, latest, ring) >= 0
	if latest.Result == protocol.ResultUnknown && lastSeen.Before(latest.At) {
		// Not even a resume entry makes an unverified install safe to
		// repeat; and until the inventory speaks, it is no failure.
		f.pending = latest
		if !forgiven {
			f.interruptions--
		}
	}
	f.count += max(f.interruptions-1, 0)
	if f.pending != nil || forgiven {
		return f
	}
	switch {
	case latest.Result == protocol.ResultFailed, latest.Result == protocol.ResultHookFailed:
		f.latest = latest
	case latest.Result == protocol.ResultUnknown && f.interruptions > 1:
		f.latest = latest
	case latest.Result == protocol.ResultUnknown:
		f.interrupted = latest
	}
	return f
}

// forgiving returns the first of the resume entries resumes that forgives
// attempt a on an endpoint of ring, or -1.
func (cp *clientPlan) forgiving(resumes []int, a *protocol.Attempt, ring int) int {
	for _, k := range resumes {
		if cp.resumeCovers(k, ring) && cp.c.Resume[k].After.After(a.At) {
			return k
		}
	}
	return -1
}

// resumeCovers reports whether resume entry k applies in ring: it names
// no ring, or that one.
func (cp *clientPlan) resumeCovers(k, ring int) bool {
	r := &cp.c.Resume[k]
	return r.Ring == "" || (ring >= 0 && r.Ring == cp.rings[ring].ring.Name)
}

// failed decides a pair whose latest attempt counts as a failure: failed
// for good after maxFailedAttempts, otherwise until the ring's window
// next opens after the attempt. It reports false when that opening has
// come and the update is due for a retry.
func (p *planner) failed(ring *ringPlan, f failure) (verdict, bool) {
	what := "failed"
	if f.latest.Result == protocol.ResultHookFailed {
		what = "the pre script failed, so it was not installed"
	}
	if f.latest.Result == protocol.ResultUnknown {
		what = "interrupted again (the agent stopped while installing), still missing"
	}
	if f.count >= maxFailedAttempts {
		v := verdict{Failed, note{rule: ring.rule}}
		if p.detail {
			v.reason = fmt.Sprintf("failed %d times, last: %s; a resume entry newer than the last attempt retries it", f.count, cmpOr(f.latest.Error, what))
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
		if f.latest.Result == protocol.ResultUnknown {
			v.reason = fmt.Sprintf("%s at %s; a second interruption counts as a failure; retried when window %q next opens", what, f.latest.At.UTC().Format(time.RFC3339), ring.window.Name)
		} else {
			kind := "failed"
			if f.latest.Result == protocol.ResultHookFailed {
				kind = "pre script failed"
			}
			v.reason = fmt.Sprintf("%s at %s: %s; retried when window %q next opens", kind, f.latest.At.UTC().Format(time.RFC3339), cmpOr(f.latest.Error, "no error text"), ring.window.Name)
		}
	}
	return v, true
}

// deferredByGuard decides a pair whose latest attempt a guard process
// deferred: waiting for the ring's window to open again after the
// attempt, no failure. It reports false once that opening has come.
func (p *planner) deferredByGuard(ring *ringPlan, a *protocol.Attempt) (verdict, bool) {
	retry := NextOpen(ring.window, ring.loc, a.At).UTC()
	if !retry.IsZero() && !p.now.Before(retry) {
		return verdict{}, false
	}
	v := verdict{WaitingWindow, note{rule: ring.closed.rule}}
	if !retry.IsZero() {
		v.at = timePtr(retry)
	}
	if p.detail {
		v.reason = fmt.Sprintf("deferred by a guard at %s: %s; not a failure, retried when window %q next opens", localStamp(a.At, ring.loc), cmpOr(a.Error, "a guarded process kept running"), ring.window.Name)
	}
	return v, true
}

// interruptedNote says why a pair whose latest attempt has an unknown
// outcome is decided as it is: installed, waiting for the inventory
// (pending) or retried; inventory is the endpoint's last report.
func (cp *clientPlan) interruptedNote(n note, a *protocol.Attempt, d Decision, inventory time.Time) note {
	at := localStamp(a.At, cp.loc)
	job := ""
	if a.Job != "" {
		job = " (job " + a.Job + ")"
	}
	switch d {
	case Installed:
		n.reason = fmt.Sprintf("interrupted at %s%s; verified installed by the inventory of %s", at, job, localStamp(inventory, cp.loc))
	case InProgress:
		n.reason = fmt.Sprintf("interrupted at %s%s (the agent stopped while installing); waiting for its inventory report to show whether it was installed", at, job)
	default:
		n.reason = fmt.Sprintf("interrupted at %s%s; still missing by the inventory of %s, retried", at, job, localStamp(inventory, cp.loc))
	}
	return n
}

// localStamp is t to the minute in the client's time zone.
func localStamp(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

// lastAttempt is u's latest attempt that was not refused, or nil.
func lastAttempt(u *protocol.Update) *protocol.Attempt {
	var latest *protocol.Attempt
	for k := range u.Attempts {
		a := &u.Attempts[k]
		if a.Result != protocol.ResultRefused && (latest == nil || a.At.After(latest.At)) {
			latest = a
		}
	}
	return latest
}
