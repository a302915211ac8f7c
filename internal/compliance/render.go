package compliance

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Formats a report renders to.
const (
	FormatMarkdown = "markdown"
	FormatCSV      = "csv"
	FormatJSON     = "json"
)

// Write renders r in format (markdown, csv or json) to w.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case FormatMarkdown:
		return r.WriteMarkdown(w)
	case FormatCSV:
		return r.WriteCSV(w)
	case FormatJSON:
		return r.WriteJSON(w)
	}
	return fmt.Errorf("unknown format %q: want markdown, csv or json", format)
}

// WriteJSON renders r as indented JSON; spans are hours.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// csvHeader names the columns of WriteCSV.
var csvHeader = []string{
	"record", "endpoint", "hostname", "update", "title", "source", "severity", "released", "due",
	"installed_at", "time_to_install_hours", "sla_hours", "status", "explanation", "rule", "job", "revision",
}

// WriteCSV renders r as one CSV table for a spreadsheet: a row per install
// (record "install", status within-sla, late or no-sla) and a row per
// breach (record "breach", status the decision at the end of the period).
// Times are RFC 3339 in UTC; spans are hours. Every text from endpoints or
// the policy is a cell no spreadsheet takes for a formula (textsafe.CSV).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, in := range r.Installs {
		due, sla := "", ""
		if !in.Due.IsZero() {
			due, sla = utc(in.Due), hours(in.SLA)
		}
		if err := cw.Write([]string{
			"install", cell(in.Endpoint), cell(in.Hostname), cell(in.Update), cell(in.Title), cell(in.Source), cell(in.Severity), utc(in.Released), due,
			utc(in.InstalledAt), hours(in.TimeToInstall), sla, in.Status, "", "", cell(in.Job), cell(in.Revision),
		}); err != nil {
			return err
		}
	}
	for _, b := range r.Breaches {
		installed, tti, sla := "", "", ""
		if b.InstalledAt != nil {
			installed = utc(*b.InstalledAt)
		}
		// A breach of an update released at a time nobody knows (due by
		// CISA's date) has no time to install nor SLA span to show.
		if !b.Released.IsZero() {
			sla = hours(Span(b.Due.Sub(b.Released)))
			if b.InstalledAt != nil {
				tti = hours(Span(b.InstalledAt.Sub(b.Released)))
			}
		}
		if err := cw.Write([]string{
			"breach", cell(b.Endpoint), cell(b.Hostname), cell(b.Update), cell(b.Title), "", cell(b.Severity), utc(b.Released), utc(b.Due),
			installed, tti, sla, string(b.Decision), cell(b.Explanation), cell(b.Rule), "", "",
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown renders r as the document an MSP mails to its client.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	loc := r.From.Location()
	local := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04 MST") }
	released := func(t time.Time, from string) string {
		switch {
		case t.IsZero():
			return "unknown"
		case from == protocol.ReleasedFirstSeen:
			// The source gives no date: say the time is the fleet's own.
			return local(t) + " (first seen)"
		}
		return local(t)
	}

	fmt.Fprintf(bw, "# Patch compliance report: %s (%s), %s\n\n", md(r.ClientName), md(r.Client), r.From.Format("January 2006"))
	to := local(r.To)
	if r.To.Before(r.From.AddDate(0, 1, 0)) {
		to += " (month in progress)"
	}
	fmt.Fprintf(bw, "- Period: %s to %s\n", local(r.From), to)
	fmt.Fprintf(bw, "- Generated: %s\n", local(r.GeneratedAt))
	fmt.Fprintf(bw, "- Policy revision judged by: `%s`\n", shortRev(r.Revision))
	fmt.Fprintf(bw, "- SLA: %s\n\n", r.slaText())

	late := 0
	for _, in := range r.Installs {
		if in.Status == Late {
			late++
		}
	}
	fmt.Fprint(bw, "## Summary\n\n")
	fmt.Fprint(bw, "| Endpoints | Updates installed | Installed late | SLA breaches | Jobs sent | Update results (ok / failed / refused / interrupted) | Jobs expired |\n")
	fmt.Fprint(bw, "|---:|---:|---:|---:|---:|---|---:|\n")
	fmt.Fprintf(bw, "| %d | %d | %d | %d | %d | %d / %d / %d / %d | %d |\n\n", len(r.Endpoints), len(r.Installs), late, len(r.Breaches),
		r.Jobs.Created, r.Jobs.Succeeded, r.Jobs.Failed, r.Jobs.Refused, r.Jobs.Interrupted, r.Jobs.Expired)

	fmt.Fprint(bw, "## Time from release to install, by severity\n\n")
	fmt.Fprint(bw, "| Severity | SLA | Installed | Within SLA | Late | Median | Longest | Breaches |\n")
	fmt.Fprint(bw, "|---|---|---:|---:|---:|---|---|---:|\n")
	for _, f := range r.Severities {
		fmt.Fprintf(bw, "| %s | %s | %d | %d | %d | %s | %s | %d |\n", md(cmpOr(f.Severity, "unrated")), spanOr(f.SLA, "none"),
			f.Installed, f.WithinSLA, f.Late, spanIf(f.Median, f.Installed), spanIf(f.Longest, f.Installed), f.Breaches)
	}
	fmt.Fprintln(bw)

	fmt.Fprint(bw, "## SLA breaches\n\n")
	if len(r.Breaches) == 0 {
		fmt.Fprint(bw, "None: every desired update was installed within its SLA.\n\n")
	} else {
		fmt.Fprint(bw, "| Endpoint | Update | Severity | Released | Due | Installed | Overdue by | Why |\n")
		fmt.Fprint(bw, "|---|---|---|---|---|---|---|---|\n")
		for _, b := range r.Breaches {
			installed := "not yet (" + string(b.Decision) + ")"
			if b.InstalledAt != nil {
				installed = local(*b.InstalledAt)
				if !b.InstalledAt.Before(r.To) {
					installed += " (after the period)"
				}
			}
			why := md(b.Explanation)
			if b.Rule != "" {
				why += " (" + textsafe.MarkdownCode(b.Rule) + ")"
			}
			due := local(b.Due)
			if b.SLARule == schema.SLAKnownExploited {
				due += " (known exploited)"
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", md(b.Hostname), updateCell(b.Update, b.Title), md(b.Severity),
				released(b.Released, b.ReleasedFrom), due, installed, b.Overdue, why)
		}
		fmt.Fprintln(bw)
	}

	fmt.Fprint(bw, "## Updates installed\n\n")
	if len(r.Installs) == 0 {
		fmt.Fprint(bw, "None in this period.\n\n")
	} else {
		fmt.Fprint(bw, "| Endpoint | Update | Severity | Released | Installed | Time to install | SLA | Policy revision |\n")
		fmt.Fprint(bw, "|---|---|---|---|---|---|---|---|\n")
		for _, in := range r.Installs {
			sla := spanOr(in.SLA, "none")
			if in.SLARule == schema.SLAKnownExploited {
				sla = "by " + local(in.Due) + " (known exploited)"
			}
			if in.Status == Late {
				sla += " (late)"
			}
			rev := ""
			if in.Revision != "" {
				rev = "`" + shortRev(in.Revision) + "`"
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", md(in.Hostname), updateCell(in.Update, in.Title),
				md(cmpOr(in.Severity, "unrated")), released(in.Released, in.ReleasedFrom), local(in.InstalledAt), in.TimeToInstall, sla, rev)
		}
		fmt.Fprintln(bw)
	}

	fmt.Fprint(bw, "## Endpoints\n\n")
	fmt.Fprint(bw, "| Endpoint | Hostname | OS | Last seen | Installed | Missing | Excluded |\n")
	fmt.Fprint(bw, "|---|---|---|---|---:|---:|---:|\n")
	for _, e := range r.Endpoints {
		seen := local(e.LastSeen)
		if e.Stale {
			seen += " (stale)"
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %d | %d | %d |\n", md(e.ID), md(e.Hostname), md(e.OS), seen, e.Installed, e.Missing, e.Excluded)
	}
	fmt.Fprintln(bw)

	fmt.Fprint(bw, "## Policy revisions in force\n\n")
	if len(r.Revisions) == 0 {
		fmt.Fprint(bw, "The controller's audit log records no revision for this client.\n")
	} else {
		fmt.Fprint(bw, "| Revision | Status | At | Problems |\n")
		fmt.Fprint(bw, "|---|---|---|---|\n")
		for _, rev := range r.Revisions {
			status := rev.Status
			if rev.At.Before(r.From) {
				status += " (in force when the period began)"
			}
			fmt.Fprintf(bw, "| `%s` | %s | %s | %s |\n", shortRev(rev.Revision), status, local(rev.At), md(strings.Join(rev.Problems, "; ")))
		}
	}
	return bw.Flush()
}

// slaText lists the SLA per severity, highest first, then that of
// known-exploited updates.
func (r *Report) slaText() string {
	var parts []string
	for _, f := range r.Severities {
		if f.SLA > 0 {
			parts = append(parts, fmt.Sprintf("%s within %s", f.Severity, f.SLA))
		}
	}
	switch r.KnownExploitedSLA {
	case "":
	case "cisa":
		parts = append(parts, "known exploited by CISA's due date")
	default:
		parts = append(parts, fmt.Sprintf("known exploited within %s of release or listing by CISA, whichever is later", r.KnownExploitedSLA))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func updateCell(id, title string) string {
	if title == "" {
		return md(id)
	}
	return md(id) + " " + md(title)
}

func spanOr(s Span, def string) string {
	if s == 0 {
		return def
	}
	return s.String()
}

// spanIf shows s when n things were measured, else a dash.
func spanIf(s Span, n int) string {
	if n == 0 {
		return "-"
	}
	return s.String()
}

// utc formats t for CSV, "" for a time not known.
func utc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func hours(s Span) string { return strconv.FormatFloat(s.Hours(), 'f', 2, 64) }

// md and cell keep text from the policy and from agents (reasons, titles,
// host names) from turning into markup or breaking a table, and from
// turning into a formula in a spreadsheet.
var (
	md   = textsafe.Markdown
	cell = textsafe.CSV
)
