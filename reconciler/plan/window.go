package plan

import (
	"slices"
	"time"

	"github.com/patchline/patchline/schema"
)

// Window maths. A window occurrence opens at the wall-clock time Start on a
// local date in the client's time zone and stays open for Duration of real
// time, so a 4h window at 22:00 on the night clocks go back still closes
// four real hours later (at 01:00 local). The occurrence dates are:
//   - Days: every listed weekday.
//   - Monthly: the Week-th Weekday of each month (Week 1..5; a month without
//     a fifth such weekday has no occurrence), moved OffsetDays days later,
//     possibly into the next month.
//
// Daylight saving time: a start that does not exist on its date (02:30 on a
// spring-forward day) opens at the first instant after the gap (03:00); a
// start that exists twice (01:30 on a fall-back day) opens at the earlier of
// the two instants.

// Occurrence is one opening of a maintenance window: [Start, End).
type Occurrence struct {
	Start time.Time
	End   time.Time
}

// Open reports whether window w is open at now in loc and, if so, when the
// occurrence that is open ends. When occurrences overlap (a duration over a
// day) the one that ends last counts.
func Open(w schema.Window, loc *time.Location, now time.Time) (open bool, end time.Time) {
	occ, ok := current(w, loc, now)
	return ok, occ.End
}

// NextOpen returns the start of the first occurrence of w that starts after
// t, or the zero time when the window never opens (no days listed).
func NextOpen(w schema.Window, loc *time.Location, t time.Time) time.Time {
	occ, ok := next(w, loc, t)
	if !ok {
		return time.Time{}
	}
	return occ.Start
}

// current finds the occurrence open at now.
func current(w schema.Window, loc *time.Location, now time.Time) (Occurrence, bool) {
	var best Occurrence
	found := false
	if w.Duration <= 0 {
		return best, false
	}
	// An occurrence open now started at most Duration ago, so on one of the
	// last Duration/24h+2 local dates (one extra day covers DST shifts).
	today := civil(now.In(loc))
	back := int(w.Duration/(24*time.Hour)) + 2
	for i := -back; i <= 0; i++ {
		d := today.AddDate(0, 0, i)
		if !occursOn(w, d) {
			continue
		}
		s := startOn(w, loc, d)
		e := s.Add(w.Duration)
		if !now.Before(s) && now.Before(e) && (!found || e.After(best.End)) {
			best, found = Occurrence{Start: s, End: e}, true
		}
	}
	return best, found
}

// next finds the first occurrence that starts after t. Every window with a
// day or a monthly rule opens within about five weeks; a year is searched.
func next(w schema.Window, loc *time.Location, t time.Time) (Occurrence, bool) {
	day := civil(t.In(loc)).AddDate(0, 0, -1)
	for range 400 {
		if occursOn(w, day) {
			if s := startOn(w, loc, day); s.After(t) {
				return Occurrence{Start: s, End: s.Add(w.Duration)}, true
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return Occurrence{}, false
}

// civil is t's local calendar date as midnight UTC, so that date arithmetic
// never meets a DST transition.
func civil(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// occursOn reports whether w opens on the civil date d.
func occursOn(w schema.Window, d time.Time) bool {
	if w.Monthly != nil {
		wd, ok := weekdays[w.Monthly.Weekday]
		if !ok {
			return false
		}
		base := d.AddDate(0, 0, -w.Monthly.OffsetDays)
		return base.Weekday() == wd && (base.Day()-1)/7+1 == w.Monthly.Week
	}
	return slices.ContainsFunc(w.Days, func(name string) bool {
		wd, ok := weekdays[name]
		return ok && wd == d.Weekday()
	})
}

// startOn is the instant w opens on civil date d in loc.
func startOn(w schema.Window, loc *time.Location, d time.Time) time.Time {
	return wallClock(loc, d.Add(time.Duration(w.Start)*time.Minute))
}

// wallClock converts a wall-clock time, given as a UTC time whose fields are
// the wanted local fields, into the instant it names in loc, resolving DST
// gaps and overlaps as the package comment says.
func wallClock(loc *time.Location, wall time.Time) time.Time {
	var best time.Time
	found := false
	// The offsets in force a day before and a day after are the only two
	// candidates: no zone changes offset twice within two days.
	for _, probe := range []time.Duration{-24 * time.Hour, 24 * time.Hour} {
		_, off := wall.Add(probe).In(loc).Zone()
		c := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if sameWall(c, wall) && (!found || c.Before(best)) {
			best, found = c, true
		}
	}
	if found {
		return best
	}
	// In a gap: the earlier offset places the instant past the transition,
	// which is where the zone in force there starts.
	_, off := wall.Add(-24 * time.Hour).In(loc).Zone()
	c := wall.Add(-time.Duration(off) * time.Second).In(loc)
	if start, _ := c.ZoneBounds(); !start.IsZero() && !start.After(c) {
		return start
	}
	return c
}

func sameWall(t, wall time.Time) bool {
	y, m, d := t.Date()
	wy, wm, wd := wall.Date()
	return y == wy && m == wm && d == wd && t.Hour() == wall.Hour() && t.Minute() == wall.Minute() && t.Second() == wall.Second()
}
