package plan

import (
	"testing"
	"time"

	"github.com/patchline/patchline/schema"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load time zone: %v", err)
	}
	return loc
}

func TestWindowOpen(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	berlin := mustLoad(t, "Europe/Berlin")
	nightly := schema.Window{Name: "nightly", Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Start: 22 * 60, Duration: 4 * time.Hour}
	at0230 := schema.Window{Name: "early", Days: []string{"sun"}, Start: 2*60 + 30, Duration: time.Hour}
	at0130 := schema.Window{Name: "fallback", Days: []string{"sun"}, Start: 60 + 30, Duration: time.Hour}
	// Patch Tuesday is the second Tuesday; +3 days is the Friday after.
	patchTuesday3 := schema.Window{Name: "pt+3", Monthly: &schema.Monthly{Weekday: "tue", Week: 2, OffsetDays: 3}, Start: 20 * 60, Duration: 6 * time.Hour}
	ptLate := schema.Window{Name: "pt+20", Monthly: &schema.Monthly{Weekday: "tue", Week: 2, OffsetDays: 20}, Start: 23 * 60, Duration: 2 * time.Hour}

	tests := []struct {
		name     string
		w        schema.Window
		loc      *time.Location
		now      time.Time
		wantOpen bool
		wantEnd  time.Time
		wantNext time.Time
	}{
		{
			name: "nightly window open at 23:00 New York", w: nightly, loc: ny,
			now:      time.Date(2026, 6, 10, 23, 0, 0, 0, ny),
			wantOpen: true, wantEnd: time.Date(2026, 6, 11, 2, 0, 0, 0, ny),
			wantNext: time.Date(2026, 6, 11, 22, 0, 0, 0, ny),
		},
		{
			name: "window crossing midnight is still open just after midnight", w: nightly, loc: ny,
			now:      time.Date(2026, 6, 11, 0, 5, 0, 0, ny),
			wantOpen: true, wantEnd: time.Date(2026, 6, 11, 2, 0, 0, 0, ny),
			wantNext: time.Date(2026, 6, 11, 22, 0, 0, 0, ny),
		},
		{
			name: "nightly window closed at noon", w: nightly, loc: berlin,
			now:      time.Date(2026, 6, 11, 12, 0, 0, 0, berlin),
			wantNext: time.Date(2026, 6, 11, 22, 0, 0, 0, berlin),
		},
		{
			name: "window closes at its end (end is exclusive)", w: nightly, loc: berlin,
			now:      time.Date(2026, 6, 11, 2, 0, 0, 0, berlin),
			wantNext: time.Date(2026, 6, 11, 22, 0, 0, 0, berlin),
		},
		{
			name: "New York spring forward: 22:00 window lasts four real hours", w: nightly, loc: ny,
			// 2026-03-08 02:00 EST jumps to 03:00 EDT; 22:00 EST + 4h = 03:00 EDT.
			now:      time.Date(2026, 3, 8, 6, 59, 0, 0, time.UTC), // 01:59 EST
			wantOpen: true, wantEnd: time.Date(2026, 3, 8, 3, 0, 0, 0, ny),
			wantNext: time.Date(2026, 3, 8, 22, 0, 0, 0, ny),
		},
		{
			name: "New York fall back: 22:00 window ends at 01:00 EST", w: nightly, loc: ny,
			// 2026-11-01 02:00 EDT falls back to 01:00 EST; 22:00 EDT + 4h = 01:00 EST.
			now:      time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), // 01:30 EDT, the first 01:30
			wantOpen: true, wantEnd: time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC),
			wantNext: time.Date(2026, 11, 1, 22, 0, 0, 0, ny),
		},
		{
			name: "New York fall back: closed during the repeated hour", w: nightly, loc: ny,
			now:      time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), // 01:30 EST, the second 01:30
			wantNext: time.Date(2026, 11, 1, 22, 0, 0, 0, ny),
		},
		{
			name: "New York 02:30 start on spring-forward day opens at 03:00 EDT", w: at0230, loc: ny,
			now:      time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), // 03:00 EDT
			wantOpen: true, wantEnd: time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC),
			wantNext: time.Date(2026, 3, 15, 2, 30, 0, 0, ny),
		},
		{
			name: "Berlin 02:30 start on spring-forward day: next opening is 03:00 CEST", w: at0230, loc: berlin,
			now:      time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			wantNext: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), // 03:00 CEST
		},
		{
			name: "Berlin fall back: 01:30 start is the first 01:30 (CEST)", w: at0130, loc: berlin,
			now:      time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC),
			wantNext: time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC), // 01:30 CEST on 25 Oct
		},
		{
			name: "Berlin fall back: 02:30 start is the first 02:30 (CEST)", w: at0230, loc: berlin,
			now:      time.Date(2026, 10, 25, 0, 45, 0, 0, time.UTC), // 02:45 CEST
			wantOpen: true, wantEnd: time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC),
			wantNext: time.Date(2026, 11, 1, 2, 30, 0, 0, berlin),
		},
		{
			name: "Berlin spring forward: 22:00 Saturday window ends after four real hours", w: nightly, loc: berlin,
			// 22:00 CET is 21:00 UTC; four hours later is 01:00 UTC, 03:00 CEST.
			now:      time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC), // 01:59 CET
			wantOpen: true, wantEnd: time.Date(2026, 3, 29, 3, 0, 0, 0, berlin),
			wantNext: time.Date(2026, 3, 29, 22, 0, 0, 0, berlin),
		},
		{
			name: "patch Tuesday +3: November 2026 opens Friday the 13th", w: patchTuesday3, loc: ny,
			now:      time.Date(2026, 11, 12, 12, 0, 0, 0, ny),
			wantNext: time.Date(2026, 11, 13, 20, 0, 0, 0, ny),
		},
		{
			name: "patch Tuesday +3: open over midnight into Saturday", w: patchTuesday3, loc: ny,
			now:      time.Date(2026, 11, 14, 1, 0, 0, 0, ny),
			wantOpen: true, wantEnd: time.Date(2026, 11, 14, 2, 0, 0, 0, ny),
			wantNext: time.Date(2026, 12, 11, 20, 0, 0, 0, ny),
		},
		{
			name: "patch Tuesday +20 crosses into the next month", w: ptLate, loc: berlin,
			// Second Tuesday of March 2026 is the 10th; +20 days is 30 March.
			now:      time.Date(2026, 3, 25, 12, 0, 0, 0, berlin),
			wantNext: time.Date(2026, 3, 30, 23, 0, 0, 0, berlin),
		},
		{
			name: "patch Tuesday +20 of January lands in February", w: ptLate, loc: berlin,
			// Second Tuesday of January 2027 is the 12th; +20 days is 1 February.
			now:      time.Date(2027, 1, 20, 12, 0, 0, 0, berlin),
			wantNext: time.Date(2027, 2, 1, 23, 0, 0, 0, berlin),
		},
		{
			name: "window with no days never opens", w: schema.Window{Name: "never", Start: 60, Duration: time.Hour}, loc: ny,
			now: time.Date(2026, 6, 10, 1, 30, 0, 0, ny),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open, end := Open(tt.w, tt.loc, tt.now)
			if open != tt.wantOpen || (open && !end.Equal(tt.wantEnd)) {
				t.Errorf("Open(%v) = %v, %v; want %v, %v", tt.now, open, end, tt.wantOpen, tt.wantEnd)
			}
			if got := NextOpen(tt.w, tt.loc, tt.now); !got.Equal(tt.wantNext) {
				t.Errorf("NextOpen(%v) = %v, want %v", tt.now, got.In(tt.loc), tt.wantNext.In(tt.loc))
			}
		})
	}
}
