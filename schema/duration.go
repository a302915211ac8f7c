package schema

import (
	"fmt"
	"strconv"
	"time"
)

// ParseDuration parses a policy duration: one or more groups of a
// non-negative whole or decimal number followed by a unit, d (24 hours), h
// or m, as in "30d", "4h", "90m" or "1d12h". Unlike time.ParseDuration it
// accepts days and rejects seconds, signs and an empty string, because
// policy durations are soak times, ages and windows.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q: use a number followed by d, h or m (e.g. \"4h\", \"1d12h\")", s)
	if s == "" {
		return 0, bad
	}
	var total float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		if j == i || j == len(s) {
			return 0, bad
		}
		n, err := strconv.ParseFloat(s[i:j], 64)
		if err != nil {
			return 0, bad
		}
		var unit time.Duration
		switch s[j] {
		case 'd':
			unit = 24 * time.Hour
		case 'h':
			unit = time.Hour
		case 'm':
			unit = time.Minute
		default:
			return 0, bad
		}
		total += n * float64(unit)
		i = j + 1
	}
	// Ten years is far beyond any sensible soak or SLA and keeps the sum
	// well inside time.Duration's range.
	if total > float64(10*365*24*time.Hour) {
		return 0, fmt.Errorf("invalid duration %q: longer than ten years", s)
	}
	return time.Duration(total), nil
}

// DateBound says which instant a calendar date stands for.
type DateBound int

const (
	// StartOfDay: "2026-11-11" is midnight at the start of that day.
	StartOfDay DateBound = iota
	// EndOfDay: "2026-12-31" lasts the whole day, so the exclusive bound
	// is midnight at the start of the next day.
	EndOfDay
)

// ParseDate parses a policy date: "YYYY-MM-DD" in loc (as the start or the
// end of that day) or an RFC 3339 timestamp.
func ParseDate(s string, loc *time.Location, bound DateBound) (time.Time, error) {
	if d, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		if bound == EndOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid date %q: use YYYY-MM-DD or an RFC 3339 time such as 2026-11-20T12:00:00Z", s)
	}
	return t, nil
}

// ParseClock turns a policy time of day, "HH:MM", into minutes after
// midnight.
func ParseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("invalid time of day %q: use HH:MM, e.g. \"22:00\"", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}
