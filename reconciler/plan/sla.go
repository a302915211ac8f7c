package plan

import (
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Due is when a desired update u, missing from an endpoint of client c,
// breaches c's sla, judged at now; rule is the sla entry that sets it:
// schema.SLAKnownExploited or u's effective severity. ok is false when no
// entry applies (c is nil, or has no SLA for the update). Everything that
// judges lateness (the SLA breach metrics, the compliance report) asks
// Due, so they agree.
//
// For an update that is effectively known exploited, the client's
// sla.knownExploited, when set, applies instead of the severity's:
//
//   - "cisa": the end of the earliest of CISA's due dates for the
//     update's CVEs (a due date is a calendar day, which ends at midnight
//     UTC). An update that is known exploited without a CISA listing (the
//     endpoint says so and the catalog was not applied) has no such date
//     and falls back to its severity's SLA.
//   - a duration: counted from when the update became known exploited,
//     the later of its release and the earliest date CISA listed one of
//     its CVEs; an update fixing a CVE listed long ago is due that long
//     after its own release, and one released before its CVE was listed
//     is due that long after the listing.
//
// Otherwise the SLA of the update's effective severity counts from its
// release. A release time that is not known counts as now, never as long
// ago (protocol.Update.ReleasedAt).
func Due(c *schema.Client, u *protocol.Update, now time.Time) (due time.Time, rule string, ok bool) {
	if c == nil {
		return time.Time{}, "", false
	}
	if x := c.KnownExploitedSLA; x != nil && u.EffectiveKnownExploited() {
		if !x.CISA {
			from := u.ReleasedAt(now)
			if listed, ok := kevListed(u); ok && listed.After(from) {
				from = listed
			}
			return from.Add(x.Within), schema.SLAKnownExploited, true
		}
		if day, ok := u.KEVDue(); ok && !day.IsZero() {
			y, m, d := day.UTC().Date()
			return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC), schema.SLAKnownExploited, true
		}
	}
	sev := u.EffectiveSeverity()
	limit, ok := c.SLA[sev]
	if !ok {
		return time.Time{}, "", false
	}
	return u.ReleasedAt(now).Add(limit), sev, true
}

// kevListed is the earliest date CISA listed one of u's CVEs as known
// exploited, and false when none is listed with a date.
func kevListed(u *protocol.Update) (time.Time, bool) {
	var first time.Time
	if u.Intel == nil {
		return first, false
	}
	for _, k := range u.Intel.KEV {
		if !k.DateAdded.IsZero() && (first.IsZero() || k.DateAdded.Before(first)) {
			first = k.DateAdded
		}
	}
	return first, !first.IsZero()
}
