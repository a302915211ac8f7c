package schema

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "4h", want: 4 * time.Hour},
		{in: "30d", want: 30 * 24 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},
		{in: "0h", want: 0},
		{in: "", wantErr: true},
		{in: "3x", wantErr: true},
		{in: "7 days", wantErr: true},
		{in: "24", wantErr: true},
		{in: "h", wantErr: true},
		{in: "-1h", wantErr: true},
		{in: "10s", wantErr: true},
		{in: "1..5h", wantErr: true},
		{in: "99999d", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDuration(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDates(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		in    string
		bound DateBound
		want  time.Time
	}{
		{"until a date lasts to the end of that day", "2026-12-31", EndOfDay, time.Date(2027, 1, 1, 0, 0, 0, 0, chicago)},
		{"from a date starts at midnight", "2026-12-28", StartOfDay, time.Date(2026, 12, 28, 0, 0, 0, 0, chicago)},
		{"end of day on DST change", "2026-11-01", EndOfDay, time.Date(2026, 11, 2, 0, 0, 0, 0, chicago)},
		{"RFC 3339 is taken as written", "2026-11-20T12:00:00Z", EndOfDay, time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDate(tt.in, chicago, tt.bound)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseDate(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	if _, err := ParseDate("31/12/2026", chicago, EndOfDay); err == nil {
		t.Error("ParseDate accepted 31/12/2026")
	}
}
