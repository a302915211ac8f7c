// Package render writes plans for people and programs: text for a
// terminal, Markdown for a pull-request comment, JSON for tools; and the
// difference between the plans of two revisions, which is what a pull
// request changes. It only formats: every fact comes from package plan.
//
// Every text that comes from outside (ids and reasons from endpoints,
// names and rules from the fleet repo, errors) is escaped for its format
// where it is printed, with package textsafe.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/patchline/patchline/internal/textsafe"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// txt and md escape outside text for a terminal and for Markdown.
var (
	txt = textsafe.Terminal
	md  = textsafe.Markdown
)

// list joins ids, each escaped with esc, with ", ".
func list(esc func(string) string, ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = esc(id)
	}
	return strings.Join(out, ", ")
}

// Format is an output format of `patchctl plan`.
type Format string

// Formats.
const (
	Text     Format = "text"
	Markdown Format = "markdown"
	JSON     Format = "json"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Text, Markdown, JSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q: want text, markdown or json", s)
}

// foldAfter is how many rows a Markdown list shows before the rest is
// folded into <details>.
const foldAfter = 20

// Plan writes res in format f. decisions says whether JSON output carries
// every pair (text and Markdown always summarise them per client and ring).
func Plan(w io.Writer, f Format, res *plan.Result, decisions bool) error {
	switch f {
	case JSON:
		out := *res
		if !decisions {
			out.Decisions = nil
		}
		return writeJSON(w, out)
	case Markdown:
		return planMarkdown(w, res)
	default:
		return planText(w, res)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// shortRev is the revision a plan shows; a plan of a working tree has
// none.
func shortRev(r string) string {
	if r == "" {
		return "working tree"
	}
	return protocol.ShortRevision(r)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// group is one (client, ring) row of the per-ring table.
type group struct {
	client, ring string
	counts       map[plan.Decision]int
	jobs         int
}

// groups counts decisions and jobs per client and ring, sorted.
func groups(res *plan.Result) []*group {
	idx := make(map[[2]string]*group)
	get := func(client, ring string) *group {
		k := [2]string{client, ring}
		g, ok := idx[k]
		if !ok {
			g = &group{client: client, ring: ring, counts: make(map[plan.Decision]int)}
			idx[k] = g
		}
		return g
	}
	for _, d := range res.Decisions {
		get(d.Client, d.Ring).counts[d.Decision]++
	}
	for _, j := range res.Jobs {
		get(j.Client, j.Ring).jobs++
	}
	out := make([]*group, 0, len(idx))
	for _, g := range idx {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].client != out[j].client {
			return out[i].client < out[j].client
		}
		return out[i].ring < out[j].ring
	})
	return out
}

// usedDecisions lists the decisions that occur in the summary, in order.
func usedDecisions(summary map[plan.Decision]int) []plan.Decision {
	var out []plan.Decision
	for _, d := range plan.AllDecisions {
		if summary[d] > 0 {
			out = append(out, d)
		}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func planText(w io.Writer, res *plan.Result) error {
	p := &printer{w: w}
	p.f("Plan of revision %s at %s\n", shortRev(res.Revision), stamp(res.Now))
	for _, line := range emergencyLines(txt, res.Emergencies) {
		p.f("%s\n", line)
	}
	p.f("\nDecisions (endpoint-update pairs):\n")
	for _, d := range plan.AllDecisions {
		p.f("  %-15s %6d\n", d, res.Summary[d])
	}
	if rm := reportModes(txt, res); rm != "" {
		p.f("\nIn report mode (decided, but no job is sent): %s\n", rm)
	}
	p.f("\nJobs: %d\n", len(res.Jobs))
	for _, j := range res.Jobs {
		p.f("  %-24s %-10s %-8s until %s  reboot %-11s %s\n", txt(j.Endpoint), txt(j.Client), txt(j.Ring), stamp(j.NotAfter), j.Reboot, jobUpdates(txt, j))
	}
	gs := groups(res)
	if len(gs) > 0 {
		used := usedDecisions(res.Summary)
		p.f("\nPer client and ring:\n")
		p.f("  %-12s %-10s %5s", "client", "ring", "jobs")
		for _, d := range used {
			p.f(" %*s", len(d)+1, d)
		}
		p.f("\n")
		for _, g := range gs {
			p.f("  %-12s %-10s %5d", txt(g.client), txt(orDash(g.ring)), g.jobs)
			for _, d := range used {
				p.f(" %*d", len(d)+1, g.counts[d])
			}
			p.f("\n")
		}
	}
	return p.err
}

func planMarkdown(w io.Writer, res *plan.Result) error {
	p := &printer{w: w}
	p.f("### Patchline plan for `%s`\n\n", shortRev(res.Revision))
	if lines := emergencyLines(md, res.Emergencies); len(lines) > 0 {
		p.f("> [!WARNING]\n> %s\n\n", strings.Join(lines, "\n> "))
	}
	p.f("Planned at %s. **%d job(s)** would be sent now.\n\n", stamp(res.Now), len(res.Jobs))
	if rm := reportModes(md, res); rm != "" {
		p.f("In report mode (decided, but no job is sent): %s.\n\n", rm)
	}
	p.f("| decision | pairs |\n|---|---:|\n")
	for _, d := range usedDecisions(res.Summary) {
		p.f("| %s | %d |\n", d, res.Summary[d])
	}
	gs := groups(res)
	if len(gs) > 0 {
		used := usedDecisions(res.Summary)
		p.f("\n#### Per client and ring\n\n| client | ring | jobs |")
		for _, d := range used {
			p.f(" %s |", d)
		}
		p.f("\n|---|---|---:|%s\n", strings.Repeat("---:|", len(used)))
		for _, g := range gs {
			p.f("| %s | %s | %d |", md(g.client), md(orDash(g.ring)), g.jobs)
			for _, d := range used {
				p.f(" %d |", g.counts[d])
			}
			p.f("\n")
		}
	}
	if len(res.Jobs) > 0 {
		p.f("\n#### Jobs\n\n")
		rows := make([]string, len(res.Jobs))
		for i, j := range res.Jobs {
			rows[i] = fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", md(j.Endpoint), md(j.Client), md(j.Ring), jobUpdates(md, j), stamp(j.NotAfter), j.Reboot)
		}
		p.table("| endpoint | client | ring | updates | not after | reboot |\n|---|---|---|---|---|---|", rows, "jobs")
	}
	return p.err
}

// emergencyLines say, first in a plan, which emergency entries let
// updates through windows, soaks or freezes, and which have expired;
// none when there are no entries.
func emergencyLines(esc func(string) string, es []plan.EmergencyEntry) []string {
	if len(es) == 0 {
		return nil
	}
	out := []string{"EMERGENCY entries (updates let through as written; never through exclusions or halts):"}
	for _, e := range es {
		var through []string
		if e.SkipSoak {
			through = append(through, "soaks")
		}
		if e.IgnoreWindows {
			through = append(through, "windows")
		}
		if e.IgnoreFreezes {
			through = append(through, "freezes")
		}
		what := "nothing"
		if len(through) > 0 {
			what = strings.Join(through, ", ")
		}
		state := "until " + stamp(e.Until)
		if !e.Active {
			state = "EXPIRED " + stamp(e.Until) + ", lets nothing through"
		}
		out = append(out, fmt.Sprintf("  %s %s through %s, %s: %s (%s)", esc(e.Client), esc(e.Update), what, state, esc(e.Reason), esc(e.Rule)))
	}
	return out
}

// reportModes lists the planned clients in report mode, each with the
// rule that sets it, escaped with esc; "" when there are none.
func reportModes(esc func(string) string, res *plan.Result) string {
	var out []string
	for _, m := range res.Modes {
		if m.Mode != schema.ModeReport {
			continue
		}
		s := esc(m.Client)
		if m.Rule != "" {
			s += " (" + esc(m.Rule) + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// printer writes formatted text and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// table writes a Markdown table, folding rows past foldAfter into a
// <details> block so a large change keeps the comment readable.
func (p *printer) table(header string, rows []string, what string) {
	shown := rows
	if len(rows) > foldAfter {
		shown = rows[:foldAfter]
	}
	p.f("%s\n%s\n", header, strings.Join(shown, "\n"))
	if len(rows) > foldAfter {
		p.f("\n<details><summary>%d more %s</summary>\n\n%s\n%s\n\n</details>\n", len(rows)-foldAfter, what, header, strings.Join(rows[foldAfter:], "\n"))
	}
}

// jobUpdates lists a job's updates, escaped with esc, saying first when
// the job rolls them back.
func jobUpdates(esc func(string) string, j plan.Job) string {
	if j.Action == protocol.ActionRollback {
		return "ROLLBACK " + list(esc, j.Updates)
	}
	return list(esc, j.Updates)
}
