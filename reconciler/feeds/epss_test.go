package feeds

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEPSSReadsTheDailyCSV(t *testing.T) {
	plain := readTestdata(t, "epss_scores-current.csv")
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"as published, gzipped", gzipped(t, plain)},
		{"decompressed", []byte(plain)},
		{"with Windows line ends", []byte(strings.ReplaceAll(plain, "\n", "\r\n"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseEPSS(context.Background(), EPSSFile, mustDecompress(t, tt.data))
			if err != nil {
				t.Fatal(err)
			}
			want := File{
				Feed:      FeedEPSS,
				Published: time.Date(2025, 8, 25, 12, 55, 0, 0, time.UTC),
				Version:   "v2025.03.14",
				Entries:   11,
			}
			if diff := cmp.Diff(want, f.file); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if got, want := f.scores["CVE-2024-3094"], (EPSS{Score: 0.84179, Percentile: 0.99284}); got != want {
				t.Errorf("CVE-2024-3094: %+v, want %+v", got, want)
			}
		})
	}
}

func mustDecompress(t *testing.T, data []byte) *bytes.Reader {
	t.Helper()
	r, err := decompressed(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}

// TestEPSSScoreDates: FIRST has written the score date with a "Z", with a
// "+0000" zone, and as a bare date.
func TestEPSSScoreDates(t *testing.T) {
	for _, tt := range []struct {
		comment string
		want    time.Time
	}{
		{"#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z", time.Date(2025, 8, 25, 12, 55, 0, 0, time.UTC)},
		{"#model_version:v2023.03.01,score_date:2023-03-07T00:00:00+0000", time.Date(2023, 3, 7, 0, 0, 0, 0, time.UTC)},
		{"#model_version:v2025.03.14,score_date:2025-08-25", time.Date(2025, 8, 25, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.comment, func(t *testing.T) {
			data := tt.comment + "\ncve,epss,percentile\nCVE-2024-3094,0.84179,0.99284\n"
			f, err := parseEPSS(context.Background(), EPSSFile, strings.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if !f.file.Published.Equal(tt.want) {
				t.Errorf("score date %v, want %v", f.file.Published, tt.want)
			}
		})
	}
}

func TestEPSSRefusesBrokenScores(t *testing.T) {
	good := readTestdata(t, "epss_scores-current.csv")
	tests := []refusal{{
		name:   "no comment line with the score date",
		mutate: func(t *testing.T, s string) string { return s[strings.IndexByte(s, '\n')+1:] },
		line:   1,
		want:   "expected the comment line",
	}, {
		name: "a comment line without the score date",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, ",score_date:2025-08-25T12:55:00Z", "")
		},
		line: 1,
		want: "has no score_date",
	}, {
		name: "a score date that is not a date",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, "score_date:2025-08-25T12:55:00Z", "score_date:yesterday")
		},
		line: 1,
		want: `score_date "yesterday" is neither a date nor a date-time`,
	}, {
		name:   "a different header",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, "cve,epss,percentile", "cve,score") },
		line:   2,
		want:   `expected the header "cve,epss,percentile"`,
	}, {
		name: "a score above 1",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, "CVE-2024-3094,0.84179", "CVE-2024-3094,84.179")
		},
		line: 10,
		want: `CVE-2024-3094: epss "84.179" is not a number from 0 to 1`,
	}, {
		name:   "a percentile that is not a number",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, "0.84179,0.99284", "0.84179,NaN") },
		line:   10,
		want:   `percentile "NaN" is not a number from 0 to 1`,
	}, {
		name: "a negative score",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, "CVE-2024-3094,0.84179", "CVE-2024-3094,-0.1")
		},
		line: 10,
		want: "not a number from 0 to 1",
	}, {
		name:   "a malformed CVE id",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, "CVE-2024-3094,", "CVE-2024-94,") },
		line:   10,
		want:   `"CVE-2024-94" is not a CVE id`,
	}, {
		name: "a row with a missing column",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, "CVE-2024-3094,0.84179,0.99284", "CVE-2024-3094,0.84179")
		},
		line: 10,
		want: "2 fields, expected 3",
	}, {
		name:   "a CVE scored twice",
		mutate: func(t *testing.T, s string) string { return s + "CVE-2024-3094,0.5,0.5\n" },
		line:   14,
		want:   "CVE-2024-3094 is scored twice",
	}, {
		name:   "an empty file",
		mutate: func(t *testing.T, s string) string { return "" },
		line:   1,
		want:   "empty file",
	}, {
		name:   "the header and no scores",
		mutate: func(t *testing.T, s string) string { return s[:strings.Index(s, "CVE-")] },
		line:   3,
		want:   "no scores after the header",
	}, {
		name:   "a line that never ends",
		mutate: func(t *testing.T, s string) string { return s + strings.Repeat("9", 10000) },
		line:   14,
		want:   "a line longer than",
	}, {
		name:   "an HTML error page instead of the CSV",
		mutate: func(t *testing.T, s string) string { return "<html><body>Service Unavailable</body></html>\n" },
		line:   1,
		want:   "expected the comment line",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseEPSS(context.Background(), EPSSFile, strings.NewReader(tt.mutate(t, good)))
			checkRefusal(t, tt, EPSSFile, err)
		})
	}
}

// TestEPSSRefusesATruncatedGzip: a download cut short is caught by gzip
// itself, even at a line boundary where the CSV alone would look whole.
func TestEPSSRefusesATruncatedGzip(t *testing.T) {
	gz := gzipped(t, readTestdata(t, "epss_scores-current.csv"))
	for _, cut := range []int{len(gz) - 4, len(gz) / 2, 12} {
		_, err := parse(context.Background(), FeedEPSS, EPSSFile, bytes.NewReader(gz[:cut]))
		pe := parseError(t, err)
		if pe.File != EPSSFile || !strings.Contains(err.Error(), "unexpected end of file") {
			t.Errorf("cut at %d of %d bytes: %v", cut, len(gz), err)
		}
	}
}
