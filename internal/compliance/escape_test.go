package compliance_test

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/compliance"
	"github.com/patchline/patchline/internal/textsafe/textsafetest"
)

// hostileReport is acme's November report built from a snapshot whose
// endpoints say hostname, title and rule (bypassing the snapshot codec, as
// a store filled before the API checked text would).
func hostileReport(t testing.TB, hostname, title string) *compliance.Report {
	t.Helper()
	in := input(t)
	for _, ep := range in.Snapshot.Endpoints {
		ep.Hostname = hostname
		for _, u := range ep.Updates {
			u.Title = title
		}
	}
	r, err := compliance.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Installs) == 0 || len(r.Breaches) == 0 {
		t.Fatalf("the fixture has %d installs and %d breaches; the test needs both", len(r.Installs), len(r.Breaches))
	}
	return r
}

// TestMarkdownReportKeepsHostileTextInItsCell: a hostname or a title that
// holds a newline, a cell separator, emphasis and an HTML comment opener
// stays in its cell of the report a client reads, and hides no row.
func TestMarkdownReportKeepsHostileTextInItsCell(t *testing.T) {
	r := hostileReport(t, "ws |\n| **pwned** | <!-- ", "Update\r\n<!-- `x` [y](http://evil.example) # \x1b[2J")
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	rows := textsafetest.TableRows(t, md)
	for _, ep := range r.Endpoints {
		if !slices.ContainsFunc(rows, func(row string) bool { return strings.HasPrefix(row, "| "+ep.ID+" |") }) {
			t.Errorf("no table row shows endpoint %s:\n%s", ep.ID, md)
		}
	}
	for _, bad := range []string{"<!--", "**pwned**", " [y]"} {
		if strings.Contains(md, bad) {
			t.Errorf("report holds %q unescaped:\n%s", bad, md)
		}
	}
	if r, i := textsafetest.RawControl(md); i >= 0 {
		t.Errorf("report holds %U at byte %d", r, i)
	}
}

// TestCSVReportNeutralisesFormulas: a hostname, an update id or a title
// that a spreadsheet would run as a formula is written with a leading
// quote, and no control character reaches the file.
func TestCSVReportNeutralisesFormulas(t *testing.T) {
	r := hostileReport(t, `=HYPERLINK("http://evil.example","open")`, "+cmd|' /C calc'!A0\x1b[2J")
	r.Installs[0].Update = "@SUM(A1:A9)"
	r.Breaches[0].Explanation = "-2+3"
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(r.Installs)+len(r.Breaches) {
		t.Fatalf("%d records, want a header, %d installs and %d breaches", len(recs), len(r.Installs), len(r.Breaches))
	}
	for i, rec := range recs[1:] {
		for j, cell := range rec {
			if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
				t.Errorf("record %d, column %s: %q starts a formula", i+1, recs[0][j], cell)
			}
			if r, at := textsafetest.RawControl(cell); at >= 0 || strings.Contains(cell, "\n") {
				t.Errorf("record %d, column %s: %q holds %U", i+1, recs[0][j], cell, r)
			}
		}
	}
	for _, want := range []string{`'=HYPERLINK("http://evil.example","open")`, `'@SUM(A1:A9)`, `'-2+3`, `'+cmd|' /C calc'!A0\x1b[2J`} {
		if !strings.Contains(buf.String(), strings.ReplaceAll(want, `"`, `""`)) {
			t.Errorf("CSV lacks the neutralised cell %s:\n%s", want, buf.String())
		}
	}
}

// withText sets every outside text of a copy of r to s.
func withText(r *compliance.Report, s string) *compliance.Report {
	c := *r
	c.ClientName = s
	c.Endpoints = slices.Clone(r.Endpoints)
	for i := range c.Endpoints {
		c.Endpoints[i].ID, c.Endpoints[i].Hostname, c.Endpoints[i].OS = "e"+s, "h"+s, "o"+s
	}
	c.Installs = slices.Clone(r.Installs)
	for i := range c.Installs {
		in := &c.Installs[i]
		in.Hostname, in.Update, in.Title, in.Source, in.Job = "h"+s, "u"+s, "t"+s, "s"+s, "j"+s
	}
	c.Breaches = slices.Clone(r.Breaches)
	for i := range c.Breaches {
		b := &c.Breaches[i]
		b.Hostname, b.Update, b.Title, b.Explanation, b.Rule = "h"+s, "u"+s, "t"+s, "x"+s, "r"+s
	}
	c.Revisions = slices.Clone(r.Revisions)
	for i := range c.Revisions {
		c.Revisions[i].Problems = []string{"p" + s}
	}
	return &c
}

var fuzzSeeds = []string{
	"ws-01",
	"ws |\n| **pwned** | <!-- ",
	"\x1b]0;pwned\x07\r\n\x00",
	"=HYPERLINK(\"http://evil.example\")",
	"``` | ``` \\",
	"\u202e\u200b\xff",
}

// FuzzReportMarkdown: whatever the endpoints report, every row of every
// table of the report keeps the cells of its header, the report holds no
// control character and has as many lines as with plain text.
func FuzzReportMarkdown(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	r := hostileReport(f, "ws-01", "title")
	var plain bytes.Buffer
	if err := withText(r, "x").WriteMarkdown(&plain); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		if err := withText(r, s).WriteMarkdown(&buf); err != nil {
			t.Fatal(err)
		}
		md := buf.String()
		if r, i := textsafetest.RawControl(md); i >= 0 {
			t.Fatalf("report holds %U at byte %d:\n%s", r, i, md)
		}
		if got, want := strings.Count(md, "\n"), strings.Count(plain.String(), "\n"); got != want {
			t.Fatalf("%d lines, %d with plain text:\n%s", got, want, md)
		}
		textsafetest.TableRows(t, md)
	})
}

// FuzzReportCSV: whatever the endpoints report, a spreadsheet reads as
// many records and cells as with plain text, no cell starts a formula and
// none holds a control character.
func FuzzReportCSV(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	r := hostileReport(f, "ws-01", "title")
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		if err := withText(r, s).WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not read back: %v", err)
		}
		if len(recs) != 1+len(r.Installs)+len(r.Breaches) {
			t.Fatalf("%d records, want %d", len(recs), 1+len(r.Installs)+len(r.Breaches))
		}
		for _, rec := range recs {
			if len(rec) != len(recs[0]) {
				t.Fatalf("record of %d cells, the header has %d: %q", len(rec), len(recs[0]), rec)
			}
			for _, cell := range rec {
				if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
					t.Fatalf("cell %q starts a formula", cell)
				}
				if r, at := textsafetest.RawControl(cell); at >= 0 || strings.Contains(cell, "\n") {
					t.Fatalf("cell %q holds %U", cell, r)
				}
			}
		}
	})
}
