package render

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/schema"
)

// Change is what a revision does compared with a base revision, both
// planned against the same state at the same time.
type Change struct {
	Base string    `json:"base"`
	Head string    `json:"head"`
	Now  time.Time `json:"now"`
	// Summary holds the decision counts of both plans.
	BaseSummary map[plan.Decision]int `json:"baseSummary"`
	HeadSummary map[plan.Decision]int `json:"headSummary"`
	// JobsAdded are jobs the head plans that the base does not, or with
	// other updates; JobsRemoved the reverse.
	JobsAdded   []plan.Job `json:"jobsAdded"`
	JobsRemoved []plan.Job `json:"jobsRemoved"`
	// Decisions are the pairs whose decision differs.
	Decisions []DecisionChange `json:"decisions"`
	// Groups count the changes per client and ring.
	Groups []GroupChange `json:"groups"`
	// ModeChanges are the clients whose mode the change switches, by
	// client.
	ModeChanges []ModeChange `json:"modeChanges"`
	// Emergencies are the head's emergency entries, shown first.
	Emergencies []plan.EmergencyEntry `json:"emergencies,omitempty"`
}

// ModeChange is a client switched between enforce and report: the same
// decisions, but jobs sent or not.
type ModeChange struct {
	Client string      `json:"client"`
	From   schema.Mode `json:"from"`
	To     schema.Mode `json:"to"`
	// Rule is the head's path:line that sets the mode, when a file does.
	Rule string `json:"rule,omitempty"`
	// Jobs counts the client's jobs the switch starts sending (the head's,
	// to enforce) or stops sending (the base's, to report).
	Jobs int `json:"jobs"`
}

// DecisionChange is one pair whose decision the change moves.
type DecisionChange struct {
	Endpoint string        `json:"endpoint"`
	Client   string        `json:"client"`
	Ring     string        `json:"ring,omitempty"`
	Update   string        `json:"update"`
	From     plan.Decision `json:"from"`
	To       plan.Decision `json:"to"`
	// Rule is the head's rule for the pair.
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// GroupChange counts one client and ring's changes.
type GroupChange struct {
	Client           string `json:"client"`
	Ring             string `json:"ring,omitempty"`
	JobsAdded        int    `json:"jobsAdded"`
	JobsRemoved      int    `json:"jobsRemoved"`
	DecisionsChanged int    `json:"decisionsChanged"`
}

// Diff compares two plans made with Options.Decisions.
func Diff(base, head *plan.Result) *Change {
	c := &Change{Base: base.Revision, Head: head.Revision, Now: head.Now, BaseSummary: base.Summary, HeadSummary: head.Summary,
		JobsAdded: []plan.Job{}, JobsRemoved: []plan.Job{}, Decisions: []DecisionChange{}, Groups: []GroupChange{},
		ModeChanges: modeChanges(base, head), Emergencies: head.Emergencies}
	// An endpoint has at most one job of each action: an install and a
	// rollback.
	type jobKey struct{ endpoint, action string }
	baseJobs := make(map[jobKey]plan.Job, len(base.Jobs))
	for _, j := range base.Jobs {
		baseJobs[jobKey{j.Endpoint, j.Action}] = j
	}
	headJobs := make(map[jobKey]plan.Job, len(head.Jobs))
	for _, j := range head.Jobs {
		headJobs[jobKey{j.Endpoint, j.Action}] = j
		if b, ok := baseJobs[jobKey{j.Endpoint, j.Action}]; !ok || !sameJob(b, j) {
			c.JobsAdded = append(c.JobsAdded, j)
		}
	}
	for _, j := range base.Jobs {
		if h, ok := headJobs[jobKey{j.Endpoint, j.Action}]; !ok || !sameJob(h, j) {
			c.JobsRemoved = append(c.JobsRemoved, j)
		}
	}
	type key struct{ endpoint, update string }
	baseDec := make(map[key]plan.PairDecision, len(base.Decisions))
	for _, d := range base.Decisions {
		baseDec[key{d.Endpoint, d.Update}] = d
	}
	for _, d := range head.Decisions {
		b, ok := baseDec[key{d.Endpoint, d.Update}]
		if ok && b.Decision == d.Decision {
			continue
		}
		from := plan.Decision("absent")
		if ok {
			from = b.Decision
		}
		c.Decisions = append(c.Decisions, DecisionChange{Endpoint: d.Endpoint, Client: d.Client, Ring: d.Ring, Update: d.Update, From: from, To: d.Decision, Rule: d.Rule, Reason: d.Reason})
	}

	idx := make(map[[2]string]*GroupChange)
	get := func(client, ring string) *GroupChange {
		k := [2]string{client, ring}
		if g, ok := idx[k]; ok {
			return g
		}
		g := &GroupChange{Client: client, Ring: ring}
		idx[k] = g
		return g
	}
	for _, j := range c.JobsAdded {
		get(j.Client, j.Ring).JobsAdded++
	}
	for _, j := range c.JobsRemoved {
		get(j.Client, j.Ring).JobsRemoved++
	}
	for _, d := range c.Decisions {
		get(d.Client, d.Ring).DecisionsChanged++
	}
	for _, g := range idx {
		c.Groups = append(c.Groups, *g)
	}
	sort.Slice(c.Groups, func(i, j int) bool {
		if c.Groups[i].Client != c.Groups[j].Client {
			return c.Groups[i].Client < c.Groups[j].Client
		}
		return c.Groups[i].Ring < c.Groups[j].Ring
	})
	return c
}

// modeChanges lists the clients planned in both revisions whose mode
// differs, with the jobs that start or stop going out.
func modeChanges(base, head *plan.Result) []ModeChange {
	out := []ModeChange{}
	was := make(map[string]schema.Mode, len(base.Modes))
	for _, m := range base.Modes {
		was[m.Client] = m.Mode
	}
	for _, m := range head.Modes {
		from, ok := was[m.Client]
		if !ok || from == m.Mode {
			continue
		}
		jobs := head.Jobs
		if m.Mode == schema.ModeReport {
			jobs = base.Jobs
		}
		n := 0
		for _, j := range jobs {
			if j.Client == m.Client {
				n++
			}
		}
		out = append(out, ModeChange{Client: m.Client, From: from, To: m.Mode, Rule: m.Rule, Jobs: n})
	}
	return out
}

// modeText says what a mode change does, for people.
func modeText(esc func(string) string, m ModeChange) string {
	var effect string
	switch {
	case m.To == schema.ModeReport && m.Jobs == 0:
		effect = "no job was due"
	case m.To == schema.ModeReport:
		effect = fmt.Sprintf("%s would no longer be sent", plural(m.Jobs, "job"))
	case m.Jobs == 0:
		effect = "no job is due now"
	default:
		effect = fmt.Sprintf("%s would now be sent", plural(m.Jobs, "job"))
	}
	s := fmt.Sprintf("%s: mode %s → %s: %s", esc(m.Client), esc(string(m.From)), esc(string(m.To)), effect)
	if m.Rule != "" {
		s += " (" + esc(m.Rule) + ")"
	}
	return s
}

// plural is "1 job", "3 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sameJob reports whether two plans send the endpoint the same work; the
// revision and idempotency key differ between revisions by design.
func sameJob(a, b plan.Job) bool {
	return a.Ring == b.Ring && a.Reboot == b.Reboot && a.NotAfter.Equal(b.NotAfter) && slices.Equal(a.Updates, b.Updates)
}

// WriteChange writes c in format f.
func WriteChange(w io.Writer, f Format, c *Change) error {
	switch f {
	case JSON:
		return writeJSON(w, c)
	case Markdown:
		return changeMarkdown(w, c)
	default:
		return changeText(w, c)
	}
}

// summaryDelta lists "decision base → head" for each decision whose count
// changes.
func summaryDelta(c *Change) []string {
	var out []string
	for _, d := range plan.AllDecisions {
		if b, h := c.BaseSummary[d], c.HeadSummary[d]; b != h {
			out = append(out, fmt.Sprintf("%s %d → %d", d, b, h))
		}
	}
	return out
}

func changeText(w io.Writer, c *Change) error {
	p := &printer{w: w}
	p.f("Change %s → %s, planned at %s\n", shortRev(c.Base), shortRev(c.Head), stamp(c.Now))
	for _, line := range emergencyLines(txt, c.Emergencies) {
		p.f("%s\n", line)
	}
	p.f("  jobs added %d, jobs removed %d, decisions changed %d\n", len(c.JobsAdded), len(c.JobsRemoved), len(c.Decisions))
	if delta := summaryDelta(c); len(delta) > 0 {
		p.f("  %s\n", strings.Join(delta, ", "))
	}
	for _, m := range c.ModeChanges {
		p.f("  %s\n", modeText(txt, m))
	}
	if len(c.Groups) > 0 {
		p.f("\nPer client and ring:\n  %-12s %-10s %6s %8s %9s\n", "client", "ring", "+jobs", "-jobs", "changed")
		for _, g := range c.Groups {
			p.f("  %-12s %-10s %6d %8d %9d\n", txt(g.Client), txt(orDash(g.Ring)), g.JobsAdded, g.JobsRemoved, g.DecisionsChanged)
		}
	}
	for _, j := range c.JobsAdded {
		p.f("+ job %-24s %-8s until %s: %s\n", txt(j.Endpoint), txt(j.Ring), stamp(j.NotAfter), jobUpdates(txt, j))
	}
	for _, j := range c.JobsRemoved {
		p.f("- job %-24s %-8s until %s: %s\n", txt(j.Endpoint), txt(j.Ring), stamp(j.NotAfter), jobUpdates(txt, j))
	}
	if len(c.Decisions) > 0 {
		p.f("\nDecisions that change:\n")
		for _, d := range c.Decisions {
			p.f("  %-24s %-28s %s → %s  %s\n", txt(d.Endpoint), txt(d.Update), d.From, d.To, txt(ruleAndReason(d)))
		}
	}
	return p.err
}

func ruleAndReason(d DecisionChange) string {
	switch {
	case d.Rule != "" && d.Reason != "":
		return d.Rule + " (" + d.Reason + ")"
	case d.Rule != "":
		return d.Rule
	}
	return d.Reason
}

func changeMarkdown(w io.Writer, c *Change) error {
	p := &printer{w: w}
	p.f("### Patchline plan: `%s` → `%s`\n\n", shortRev(c.Base), shortRev(c.Head))
	if lines := emergencyLines(md, c.Emergencies); len(lines) > 0 {
		p.f("> [!WARNING]\n> %s\n\n", strings.Join(lines, "\n> "))
	}
	if len(c.JobsAdded)+len(c.JobsRemoved)+len(c.Decisions)+len(c.ModeChanges) == 0 {
		p.f("Planned at %s against the same fleet state: **this change does not change any decision or job.**\n", stamp(c.Now))
		return p.err
	}
	p.f("Planned at %s against the same fleet state: **%d job(s) added, %d removed, %d decision(s) changed.**\n\n",
		stamp(c.Now), len(c.JobsAdded), len(c.JobsRemoved), len(c.Decisions))
	if delta := summaryDelta(c); len(delta) > 0 {
		p.f("Decision totals: %s.\n\n", strings.Join(delta, ", "))
	}
	for _, m := range c.ModeChanges {
		p.f("Mode change: %s.\n\n", modeText(md, m))
	}
	p.f("| client | ring | jobs added | jobs removed | decisions changed |\n|---|---|---:|---:|---:|\n")
	for _, g := range c.Groups {
		p.f("| %s | %s | %d | %d | %d |\n", md(g.Client), md(orDash(g.Ring)), g.JobsAdded, g.JobsRemoved, g.DecisionsChanged)
	}
	jobRows := func(jobs []plan.Job) []string {
		rows := make([]string, len(jobs))
		for i, j := range jobs {
			rows[i] = fmt.Sprintf("| %s | %s | %s | %s | %s |", md(j.Endpoint), md(j.Client), md(j.Ring), jobUpdates(md, j), stamp(j.NotAfter))
		}
		return rows
	}
	const jobHeader = "| endpoint | client | ring | updates | not after |\n|---|---|---|---|---|"
	if len(c.JobsAdded) > 0 {
		p.f("\n#### Jobs added\n\n")
		p.table(jobHeader, jobRows(c.JobsAdded), "jobs added")
	}
	if len(c.JobsRemoved) > 0 {
		p.f("\n#### Jobs removed\n\n")
		p.table(jobHeader, jobRows(c.JobsRemoved), "jobs removed")
	}
	if len(c.Decisions) > 0 {
		p.f("\n#### Decisions that change\n\n")
		rows := make([]string, len(c.Decisions))
		for i, d := range c.Decisions {
			rows[i] = fmt.Sprintf("| %s | %s | %s | %s → %s | %s |", md(d.Endpoint), md(orDash(d.Ring)), md(d.Update), d.From, d.To, md(ruleAndReason(d)))
		}
		p.table("| endpoint | ring | update | decision | rule |\n|---|---|---|---|---|", rows, "decision changes")
	}
	return p.err
}
