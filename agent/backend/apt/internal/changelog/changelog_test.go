package changelog

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

// readTestdata returns the text of a changelog in testdata/, decompressed
// when it is gzipped as packages ship it.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, ".gz") {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return text
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestParseRealChangelogs reads changelogs shipped in real Debian packages
// (see testdata/README.md) and checks their newest entries field by field.
func TestParseRealChangelogs(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		entries int
		// newest are the first entries, compared whole.
		newest  []*Entry
		wantErr string
	}{
		{
			name:    "bookworm-security openssl: several entries with CVEs, trimmed by debhelper with a comment",
			file:    "openssl_3.0.22-1~deb12u2.changelog.Debian.gz",
			entries: 55,
			newest: []*Entry{
				{Source: "openssl", Version: "3.0.22-1~deb12u2", Urgency: "high", Date: utc("2026-10-21T09:54:24Z"),
					CVEs: []string{"CVE-2026-35189", "CVE-2026-54872", "CVE-2026-75805", "CVE-2026-75806", "CVE-2026-77696", "CVE-2026-84782"}},
				{Source: "openssl", Version: "3.0.22-1~deb12u1", Urgency: "medium", Date: utc("2026-09-23T03:52:17Z"),
					CVEs: []string{"CVE-2026-42767", "CVE-2026-54874", "CVE-2026-63072", "CVE-2026-63074", "CVE-2026-63076", "CVE-2026-75803"}},
				{Source: "openssl", Version: "3.0.20-1~deb12u2", Urgency: "medium", Date: utc("2026-06-06T19:56:20Z"),
					CVEs: []string{"CVE-2026-7383", "CVE-2026-9076", "CVE-2026-34180", "CVE-2026-34182", "CVE-2026-42766", "CVE-2026-42770", "CVE-2026-45445", "CVE-2026-45446", "CVE-2026-45447"}},
				{Source: "openssl", Version: "3.0.20-1~deb12u1", Urgency: "medium", Date: utc("2026-05-04T18:47:50Z")},
			},
		},
		{
			name:    "binNMU changelog of bash for amd64 (changelog.Debian.amd64.gz)",
			file:    "bash_5.2.15-2+b13.changelog.Debian.amd64.gz",
			entries: 1,
			newest:  []*Entry{{Source: "bash", Version: "5.2.15-2+b13", Urgency: "low", Date: utc("2026-05-07T20:33:02Z")}},
		},
		{
			name:    "bash's source changelog: entries without CVEs",
			file:    "bash_5.2.15-2+b13.changelog.Debian.gz",
			entries: 24,
			newest: []*Entry{
				{Source: "bash", Version: "5.2.15-2", Urgency: "medium", Date: utc("2023-01-02T12:06:21Z")},
				{Source: "bash", Version: "5.2.15-1", Urgency: "medium", Date: utc("2022-12-31T15:40:30Z")},
			},
		},
		{
			name:    "openssh: an epoch in every version",
			file:    "openssh_epoch1-9.2p1-2+deb12u10.head.txt",
			entries: 8,
			newest: []*Entry{
				{Source: "openssh", Version: "1:9.2p1-2+deb12u10", Urgency: "medium", Date: utc("2026-05-05T10:26:56Z"),
					CVEs: []string{"CVE-2026-35385", "CVE-2026-35386", "CVE-2026-35387", "CVE-2026-35388", "CVE-2026-35414"}},
				{Source: "openssh", Version: "1:9.2p1-2+deb12u9", Urgency: "medium", Date: utc("2026-04-04T23:33:31Z"), CVEs: []string{"CVE-2026-3497"}},
			},
		},
		{
			name:    "attr: an epoch added, dropped by mistake and an emergency upload",
			file:    "attr_epoch1-2.5.1-4.epochs.txt",
			entries: 4,
			newest: []*Entry{
				{Source: "attr", Version: "2.4.33-1", Urgency: "low", Date: utc("2006-07-03T00:08:43Z")},
				{Source: "attr", Version: "1:2.4.32-1.2", Urgency: "low", Date: utc("2007-07-25T20:33:58Z")},
				{Source: "attr", Version: "1:2.4.32-1.1", Urgency: "emergency", Date: utc("2006-12-18T13:42:31Z")},
				{Source: "attr", Version: "2.4.32-1", Urgency: "low", Date: utc("2006-03-27T22:14:25Z")},
			},
		},
		{
			name:    "cscope: urgency in capitals, a CAN- candidate id is no CVE id, one-digit day after two spaces",
			file:    "cscope_15.9-1.can-ids.txt",
			entries: 1,
			newest:  []*Entry{{Source: "cscope", Version: "15.5-1.1", Urgency: "high", Date: utc("2004-12-05T17:45:00Z")}},
		},
		{
			name:    "tzdata: several entries, none with a CVE",
			file:    "tzdata_2026f-0+deb12u1.head.txt",
			entries: 5,
			newest: []*Entry{
				{Source: "tzdata", Version: "2026f-0+deb12u1", Urgency: "medium", Date: utc("2026-10-29T10:32:16Z")},
				{Source: "tzdata", Version: "2026e-0+deb12u1", Urgency: "medium", Date: utc("2026-10-23T10:16:23Z")},
			},
		},
		{
			name:    "malformed trailer in the second entry: the first entry, then an error naming the line",
			file:    "tzdata_2026f-0+deb12u1.bad-trailer.txt",
			entries: 1,
			newest:  []*Entry{{Source: "tzdata", Version: "2026f-0+deb12u1", Urgency: "medium", Date: utc("2026-10-29T10:32:16Z")}},
			wantErr: `line 20: trailer date "Friday, 23rd October 2026" is not an RFC 2822 date`,
		},
		{
			name:    "upstream changelog.gz is not a Debian changelog",
			file:    "openssl_3.0.22-1~deb12u2.upstream-changelog.txt",
			wantErr: `line 1: not a changelog entry header: "OpenSSL CHANGES"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(readTestdata(t, tc.file)))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if len(got) != tc.entries {
				t.Errorf("%d entries, want %d", len(got), tc.entries)
			}
			if d := cmp.Diff(tc.newest, got[:min(len(got), len(tc.newest))]); d != "" {
				t.Errorf("newest entries (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseSyntax(t *testing.T) {
	const trailer = " -- Jane Doe <jane@example.org>  Tue, 30 Jan 2024 20:53:17 +0000\n"
	entry := func(header string, body ...string) string {
		return header + "\n\n" + strings.Join(body, "\n") + "\n\n" + trailer + "\n"
	}
	tests := []struct {
		name    string
		in      string
		want    []*Entry
		wantErr string
	}{
		{name: "empty file", in: ""},
		{
			name: "urgency with a comment, further options, CVE ids in change text only",
			in: entry("pkg (1.0-2) unstable; urgency=low (HIGH for m68k), binary-only=yes", "  * Fix CVE-2024-0001.") +
				entry("pkg (1.0-1) unstable CVE-2024-0002; urgency=Medium", "  * Initial release."),
			want: []*Entry{
				{Source: "pkg", Version: "1.0-2", Urgency: "low", CVEs: []string{"CVE-2024-0001"}, Date: utc("2024-01-30T20:53:17Z")},
				{Source: "pkg", Version: "1.0-1", Urgency: "medium", Date: utc("2024-01-30T20:53:17Z")},
			},
			wantErr: "",
		},
		{
			name: "unknown or missing urgency is left empty",
			in:   entry("pkg (2) unstable; urgency=whenever", "  * x") + entry("pkg (1) unstable; closes=1", "  * y"),
			want: []*Entry{
				{Source: "pkg", Version: "2", Date: utc("2024-01-30T20:53:17Z")},
				{Source: "pkg", Version: "1", Date: utc("2024-01-30T20:53:17Z")},
			},
		},
		{
			name: "one space before the date, a tab-indented change, a date with a zone comment",
			in:   "pkg (1) unstable; urgency=critical\n\n\t* CVE-2023-12345\n\n -- Jane <j@example.org> Tue, 30 Jan 2024 20:53:17 +0100 (CET)\n",
			want: []*Entry{{Source: "pkg", Version: "1", Urgency: "critical", CVEs: []string{"CVE-2023-12345"}, Date: utc("2024-01-30T19:53:17Z")}},
		},
		{
			name: "month in full, as dpkg's strptime takes it",
			in:   "pkg (1) unstable; urgency=low\n\n  * x\n\n -- Jane <j@example.org>  Mon,  23 February 2004 13:10:00 +0900\n",
			want: []*Entry{{Source: "pkg", Version: "1", Urgency: "low", Date: utc("2004-02-23T04:10:00Z")}},
		},
		{
			name: "comments skipped, Emacs variables end the changelog",
			in:   "# a comment\n" + entry("pkg (1) unstable; urgency=low", "  * x") + "Local variables:\nmode: debian-changelog\nEnd:\n",
			want: []*Entry{{Source: "pkg", Version: "1", Urgency: "low", Date: utc("2024-01-30T20:53:17Z")}},
		},
		{
			name: "vim modeline ends the changelog",
			in:   entry("pkg (1) unstable; urgency=low", "  * x") + "vim: ft=debchangelog\ngarbage\n",
			want: []*Entry{{Source: "pkg", Version: "1", Urgency: "low", Date: utc("2024-01-30T20:53:17Z")}},
		},
		{
			name:    "changelog ends before the trailer",
			in:      "pkg (1) unstable; urgency=low\n\n  * x\n",
			wantErr: "line 1: entry pkg (1) has no trailer line",
		},
		{
			name:    "next entry starts before the trailer",
			in:      "pkg (2) unstable; urgency=low\n\n  * x\n\n" + entry("pkg (1) unstable; urgency=low", "  * y"),
			wantErr: "line 1: entry pkg (2) has no trailer line before the next entry",
		},
		{
			name:    "trailer without an email",
			in:      "pkg (1) unstable; urgency=low\n\n  * x\n\n -- Jane Doe  Tue, 30 Jan 2024 20:53:17 +0000\n",
			wantErr: "line 5: malformed trailer line",
		},
		{
			name:    "change text between entries",
			in:      entry("pkg (2) unstable; urgency=low", "  * x") + "  * stray\n",
			want:    []*Entry{{Source: "pkg", Version: "2", Urgency: "low", Date: utc("2024-01-30T20:53:17Z")}},
			wantErr: "line 7: change text outside an entry",
		},
		{
			name:    "unindented text inside an entry",
			in:      "pkg (1) unstable; urgency=low\nFixed things\n" + trailer,
			wantErr: "line 2: badly formatted line in entry pkg (1)",
		},
		{
			name:    "header without distribution",
			in:      "pkg (1); urgency=low\n",
			wantErr: `line 1: not a changelog entry header: "pkg (1); urgency=low"`,
		},
		{
			name:    "line longer than 64 KiB",
			in:      "pkg (1) unstable; urgency=low\n\n  " + strings.Repeat("x", maxLineBytes) + "\n" + trailer,
			wantErr: "line 3: longer than 65536 bytes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("entries (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseLimits: a huge or hostile changelog stops Parse with an error
// instead of filling memory.
func TestParseLimits(t *testing.T) {
	const trailer = " -- Jane Doe <jane@example.org>  Tue, 30 Jan 2024 20:53:17 +0000\n\n"
	manyEntries := func(n int) string {
		var b strings.Builder
		for i := n; i > 0; i-- {
			fmt.Fprintf(&b, "pkg (%d) unstable; urgency=low\n\n  * x\n\n%s", i, trailer)
		}
		return b.String()
	}
	manyCVEs := func(entries, per int) string {
		var b strings.Builder
		for e := 0; e < entries; e++ {
			fmt.Fprintf(&b, "pkg (%d) unstable; urgency=low\n\n", entries-e)
			for i := 0; i < per; i++ {
				fmt.Fprintf(&b, "  * CVE-2024-%07d\n", e*per+i)
			}
			b.WriteString("\n" + trailer)
		}
		return b.String()
	}
	tests := []struct {
		name    string
		in      string
		entries int
		wantErr string
	}{
		{"as many entries as allowed", manyEntries(maxEntries), maxEntries, ""},
		{"one entry too many", manyEntries(maxEntries + 1), maxEntries, fmt.Sprintf("more than %d entries", maxEntries)},
		{"an entry over 1 MiB", "pkg (1) unstable; urgency=low\n\n" + strings.Repeat("  * "+strings.Repeat("y", 1000)+"\n", 1100) + trailer, 0, "entry pkg (1) longer than 1048576 bytes"},
		{"more CVE ids than allowed", manyCVEs(maxCVEs/10000+1, 10000), maxCVEs / 10000, fmt.Sprintf("more than %d CVE ids", maxCVEs)},
		{"text beyond 16 MiB", manyEntries(1) + strings.Repeat("# padding comment "+strings.Repeat("z", 1000)+"\n", maxBytes/1000), 1, "changelog longer than 16777216 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
			if len(got) != tc.entries {
				t.Errorf("%d entries, want %d", len(got), tc.entries)
			}
		})
	}
}

// TestParseStopsReadingAtTheLimit: an endless input (a decompression
// bomb) is read only a little past the limit.
func TestParseStopsReadingAtTheLimit(t *testing.T) {
	r := &countingReader{}
	if _, err := Parse(r); err == nil || !strings.Contains(err.Error(), "changelog longer than") {
		t.Fatalf("Parse of an endless comment = %v, want the size error", err)
	}
	if r.n > maxBytes+maxLineBytes+2 {
		t.Errorf("read %d bytes, want at most %d", r.n, maxBytes+maxLineBytes+2)
	}
}

// countingReader is an endless changelog of comment lines.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		if (c.n+i)%64 == 63 {
			p[i] = '\n'
		} else if (c.n+i)%64 < 2 {
			p[i] = "# "[(c.n+i)%64]
		} else {
			p[i] = 'c'
		}
	}
	c.n += len(p)
	return len(p), nil
}

func TestFindCVEs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"  * CVE-2024-0727: PKCS12 NULL dereference", []string{"CVE-2024-0727"}},
		{"(CVE-2023-5678, CVE-2023-6129; CVE-2023-6237)", []string{"CVE-2023-5678", "CVE-2023-6129", "CVE-2023-6237"}},
		{"CVE-2019-1010022 and CVE-2024-12345.", []string{"CVE-2019-1010022", "CVE-2024-12345"}},
		{"debian/patches/CVE-2024-2511.patch", []string{"CVE-2024-2511"}},
		{"CVE-2024-0727 CVE-2024-0727", []string{"CVE-2024-0727", "CVE-2024-0727"}},
		{"CAN-2004-0996, cve-2024-0727, XCVE-2024-0727, CVE-2024-0727a, CVE_2024_0727", nil},
		{"CVE-2024-072 (three digits), CVE-24-0727, CVE-20245-0727, CVE-2024-", nil},
		{"CVE-2024-0727-1 is no id, nor is CVE-2024-1234567890123456789", nil},
		{"CVE-CVE-2024-0727", nil},
	}
	for _, tc := range tests {
		if d := cmp.Diff(tc.want, findCVEs(tc.in)); d != "" {
			t.Errorf("findCVEs(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestCVEsAndUrgencyOfSeveralEntries(t *testing.T) {
	entries := []*Entry{
		{Urgency: "medium", CVEs: []string{"CVE-2024-10000", "CVE-2024-9999"}},
		{Urgency: "", CVEs: []string{"CVE-2023-99999"}},
		{Urgency: "high", CVEs: []string{"CVE-2024-9999", "CVE-2025-0001"}},
		{Urgency: "low"},
	}
	want := []string{"CVE-2023-99999", "CVE-2024-9999", "CVE-2024-10000", "CVE-2025-0001"}
	if d := cmp.Diff(want, CVEs(entries)); d != "" {
		t.Errorf("CVEs (-want +got):\n%s", d)
	}
	if got := Urgency(entries); got != "high" {
		t.Errorf("Urgency = %q, want high", got)
	}
	if got := Urgency(entries[1:2]); got != "" {
		t.Errorf("Urgency of an entry without one = %q, want none", got)
	}
	if got := Urgency([]*Entry{{Urgency: "critical"}, {Urgency: "emergency"}}); got != "critical" {
		t.Errorf("Urgency of critical and emergency = %q, want critical (Debian's order)", got)
	}
}

func FuzzChangelog(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if filepath.Base(name) != "README.md" {
			f.Add(readTestdata(f, filepath.Base(name)))
		}
	}
	f.Add([]byte("p (1) u; urgency=low\n\n  * CVE-2024-0001\n\n -- a <b>  Tue, 30 Jan 2024 20:53:17 +0000\n"))
	f.Add([]byte("p (1) u;\n -- <> x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := Parse(bytes.NewReader(b))
		if err == nil && len(b) > 0 && len(entries) == 0 && !blankOrComments(b) {
			// Text that is neither entries nor skippable must be an error.
			t.Errorf("no entries and no error for %q", b)
		}
		if len(entries) > maxEntries {
			t.Errorf("%d entries, limit %d", len(entries), maxEntries)
		}
		for _, e := range entries {
			if e.Source == "" || e.Version == "" || e.Date.IsZero() || e.Date.Location() != time.UTC {
				t.Errorf("incomplete entry %+v", e)
			}
			if e.Urgency != "" && !slices.Contains(protocol.Urgencies, e.Urgency) {
				t.Errorf("urgency %q", e.Urgency)
			}
			if !slices.IsSortedFunc(e.CVEs, compareCVEs) {
				t.Errorf("CVEs not in order: %q", e.CVEs)
			}
			for _, id := range e.CVEs {
				if got := findCVEs(id); len(got) != 1 || got[0] != id {
					t.Errorf("CVE id %q is not one", id)
				}
			}
		}
		if n := len(CVEs(entries)); n > maxCVEs {
			t.Errorf("%d CVE ids, limit %d", n, maxCVEs)
		}
	})
}

// blankOrComments reports input Parse may read as no entries without an
// error: blank lines, comments, or an editor block ending the changelog.
func blankOrComments(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.TrimSpace(line) == "" || ignored(line):
		case endOfChangelog(line):
			return true
		default:
			return false
		}
	}
	return true
}
