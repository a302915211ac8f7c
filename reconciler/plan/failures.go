package plan

import (
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
)

// maxFailedAttempts is how many unforgiven failed attempts make a pair
// failed until a resume entry forgives them.
const maxFailedAttempts = 3

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
