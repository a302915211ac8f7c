// Package compliance builds the monthly patch compliance report of one client,
// the document an MSP mails to a client or hands to its auditor: the
// client's endpoints, the updates installed with their times, how long each
// severity took from release to install against the client's SLA, every
// breach of the SLA with the exclusion or halt that explains it, the jobs
// sent, and the policy revisions in force.
//
// Build is a pure function of the controller's state snapshot, its audit
// log, the client's policy at the revision in force, the month and the
// current time; renderers write the report as markdown, CSV or JSON.
package compliance

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
	"github.com/patchline/patchline/schema"
)

// Input is everything a report is built from.
type Input struct {
	// Client is the client's id.
	Client string
	// Month is the calendar month reported, "2026-11", in the client's time
	// zone.
	Month string
	// Now is when the report is made; a month still running is reported up
	// to Now.
	Now time.Time
	// Snapshot is the controller's state (GET /v1/state).
	Snapshot *protocol.Snapshot
	// Audit is the controller's audit log (GET /v1/audit), in any order.
	Audit []protocol.AuditEntry
	// Fleet is the fleet repository at the revision the client runs; it
	// must hold the client. Its sla judges installs (through plan.Due) and
	// its exclusions and rings explain breaches.
	Fleet *schema.Fleet
}

// Report is one client's compliance report for one month.
type Report struct {
	Client     string `json:"client"`
	ClientName string `json:"clientName"`
	Month      string `json:"month"`
	// From and To bound the period reported: the month in the client's
	// zone, cut at GeneratedAt while the month runs.
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Revision is the policy revision the report judges by.
	Revision string `json:"revision"`
	// SLA is the client's SLA per severity.
	SLA map[string]Span `json:"sla"`
	// KnownExploitedSLA is the client's sla.knownExploited, the SLA of
	// known-exploited updates, as the policy writes it ("cisa", "14d"),
	// or "" when it has none.
	KnownExploitedSLA string `json:"knownExploitedSla,omitempty"`
	// Revisions are the policy revisions in force during the period: the
	// one applied before it began, then every one applied or refused in it.
	Revisions  []Revision       `json:"revisions"`
	Endpoints  []Endpoint       `json:"endpoints"`
	Installs   []Install        `json:"installs"`
	Severities []SeverityFigure `json:"severities"`
	Breaches   []Breach         `json:"breaches"`
	Jobs       JobFigures       `json:"jobs"`
}

// Revision is a policy revision the controller applied or refused for the
// client.
type Revision struct {
	Revision string    `json:"revision"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	// Problems say why a refused revision was refused.
	Problems []string `json:"problems,omitempty"`
}

// Endpoint is one of the client's endpoints.
type Endpoint struct {
	ID       string    `json:"id"`
	Hostname string    `json:"hostname"`
	OS       string    `json:"os"`
	LastSeen time.Time `json:"lastSeen"`
	// Stale: not seen for longer than the client's staleAfter at the end
	// of the period.
	Stale bool `json:"stale"`
	// Installed counts updates installed during the period.
	Installed int `json:"installed"`
	// Missing counts desired updates not installed at the end of the
	// period (drift, waiting, failed or halted); Excluded those held by an
	// exclusion.
	Missing  int `json:"missing"`
	Excluded int `json:"excluded"`
}

// Install is one update installed on one endpoint during the period.
type Install struct {
	Endpoint string `json:"endpoint"`
	Hostname string `json:"hostname"`
	Update   string `json:"update"`
	Title    string `json:"title,omitempty"`
	Source   string `json:"source"`
	// Severity is the update's effective severity.
	Severity string `json:"severity,omitempty"`
	// Released is zero when the release time is not known; the update
	// then counts as released when it was installed. ReleasedFrom says
	// where it came from: "vendor", or "first-seen" when the source gives
	// no date and the fleet's first sighting stands in.
	Released     time.Time `json:"released"`
	ReleasedFrom string    `json:"releasedFrom,omitempty"`
	InstalledAt  time.Time `json:"installedAt"`
	// TimeToInstall is InstalledAt minus the release.
	TimeToInstall Span `json:"timeToInstall"`
	// Due is when the client's sla required the install (plan.Due), and
	// SLARule the sla entry that set it: the severity or knownExploited.
	// Both are zero when no entry applies.
	Due     time.Time `json:"due,omitzero"`
	SLARule string    `json:"slaRule,omitempty"`
	// SLA is how long after the release the SLA allowed, Due minus the
	// release; zero when no entry applies.
	SLA Span `json:"sla,omitempty"`
	// Status is within-sla, late or no-sla.
	Status string `json:"status"`
	// Job and Revision are the job that installed the update and the
	// policy revision the job came from, when the controller sent it.
	Job      string `json:"job,omitempty"`
	Revision string `json:"revision,omitempty"`
}

// Install statuses.
const (
	WithinSLA = "within-sla"
	Late      = "late"
	NoSLA     = "no-sla"
)

// SeverityFigure sums up the installs and breaches of one severity.
type SeverityFigure struct {
	Severity  string `json:"severity"`
	SLA       Span   `json:"sla,omitempty"`
	Installed int    `json:"installed"`
	WithinSLA int    `json:"withinSla"`
	Late      int    `json:"late"`
	// Median and Longest are times from release to install.
	Median  Span `json:"median"`
	Longest Span `json:"longest"`
	// Breaches counts breaches of the period, installed late or still
	// missing.
	Breaches int `json:"breaches"`
}

// Breach is a desired update that stayed missing on an endpoint past its
// SLA during the period.
type Breach struct {
	Endpoint string `json:"endpoint"`
	Hostname string `json:"hostname"`
	Update   string `json:"update"`
	Title    string `json:"title,omitempty"`
	Severity string `json:"severity"`
	// Released is zero when the release time is not known; ReleasedFrom
	// is as for Install.
	Released     time.Time `json:"released"`
	ReleasedFrom string    `json:"releasedFrom,omitempty"`
	// Due is when the client's sla required the install (plan.Due), and
	// SLARule the sla entry that set it: the severity or knownExploited.
	Due     time.Time `json:"due"`
	SLARule string    `json:"slaRule"`
	// InstalledAt is when the update was installed, late (possibly after
	// the period); nil while it is still missing.
	InstalledAt *time.Time `json:"installedAt"`
	// Overdue is how long past Due the update was installed, or was at the
	// end of the period if it was still missing then.
	Overdue Span `json:"overdue"`
	// Decision is the planner's decision at the end of the period.
	Decision plan.Decision `json:"decision"`
	// Explanation says what held the update: an exclusion, a halted
	// rollout, a freeze, or the decision's reason; Rule is the path:line
	// of that policy entry.
	Explanation string `json:"explanation"`
	Rule        string `json:"rule,omitempty"`
}

// JobFigures count the client's jobs during the period.
type JobFigures struct {
	Created int `json:"created"`
	// Results count update results of the jobs that reported.
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Refused   int `json:"refused"`
	// Interrupted counts results whose outcome was unknown (the agent
	// stopped while installing); the next inventory says what happened,
	// and the update shows as installed or missing accordingly.
	Interrupted int `json:"interrupted"`
	Expired     int `json:"expired"`
}

// Span is a duration that reads as days and hours ("3d 4h") and encodes in
// JSON as a number of hours.
type Span time.Duration

// String formats s as days, hours and minutes, leaving out zero parts.
func (s Span) String() string {
	d := time.Duration(s).Round(time.Minute)
	if d == 0 {
		return "0m"
	}
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	var parts []string
	if days := d / (24 * time.Hour); days > 0 {
		parts = append(parts, fmt.Sprintf("%dd", days))
		d -= days * 24 * time.Hour
	}
	if h := d / time.Hour; h > 0 {
		parts = append(parts, fmt.Sprintf("%dh", h))
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		parts = append(parts, fmt.Sprintf("%dm", m))
	}
	return sign + strings.Join(parts, " ")
}

// Hours is s in hours, to two decimals.
func (s Span) Hours() float64 {
	return float64(time.Duration(s).Round(36*time.Second)) / float64(time.Hour)
}

// MarshalJSON encodes s as a number of hours.
func (s Span) MarshalJSON() ([]byte, error) { return json.Marshal(s.Hours()) }

// Build makes the report of in.Client for in.Month.
func Build(in Input) (*Report, error) {
	if in.Snapshot == nil || in.Fleet == nil {
		return nil, fmt.Errorf("report: snapshot and fleet are required")
	}
	client := in.Fleet.Clients[in.Client]
	if client == nil {
		return nil, fmt.Errorf("report: the fleet at revision %s has no valid client %q", shortRev(in.Fleet.Revision), in.Client)
	}
	loc := client.Location
	if loc == nil {
		loc = time.UTC
	}
	start, err := time.ParseInLocation("2006-01", in.Month, loc)
	if err != nil {
		return nil, fmt.Errorf("report: month %q: want YYYY-MM, e.g. 2026-11", in.Month)
	}
	if !in.Now.After(start) {
		return nil, fmt.Errorf("report: month %s has not begun at %s", in.Month, in.Now.UTC().Format(time.RFC3339))
	}
	end := start.AddDate(0, 1, 0)
	if in.Now.Before(end) {
		end = in.Now.In(loc)
	}
	r := &Report{
		Client: client.ID, ClientName: client.Name, Month: in.Month,
		From: start, To: end, GeneratedAt: in.Now, Revision: in.Fleet.Revision,
		SLA:       make(map[string]Span, len(client.SLA)),
		Revisions: []Revision{}, Endpoints: []Endpoint{}, Installs: []Install{}, Severities: []SeverityFigure{}, Breaches: []Breach{},
	}
	for sev, d := range client.SLA {
		r.SLA[sev] = Span(d)
	}
	if x := client.KnownExploitedSLA; x != nil {
		r.KnownExploitedSLA = "cisa"
		if !x.CISA {
			r.KnownExploitedSLA = Span(x.Within).String()
		}
	}

	// Only the client's endpoints are planned: the others do not change
	// its decisions, and its report must not show them.
	snap := &protocol.Snapshot{APIVersion: in.Snapshot.APIVersion, GeneratedAt: in.Snapshot.GeneratedAt}
	for _, ep := range in.Snapshot.Endpoints {
		if ep != nil && ep.Client == in.Client {
			snap.Endpoints = append(snap.Endpoints, ep)
		}
	}
	slices.SortFunc(snap.Endpoints, func(a, b *protocol.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	res, err := plan.Plan(in.Fleet, snap, end, plan.Options{Decisions: true})
	if err != nil {
		return nil, fmt.Errorf("report: plan at %s: %w", end.UTC().Format(time.RFC3339), err)
	}
	decisions := make(map[[2]string]plan.PairDecision, len(res.Decisions))
	for _, d := range res.Decisions {
		decisions[[2]string{d.Endpoint, d.Update}] = d
	}

	jobRevision := r.audit(in.Audit, in.Client)
	staleAfter := client.EffectiveStaleAfter()
	for _, ep := range snap.Endpoints {
		e := Endpoint{ID: ep.ID, Hostname: ep.Hostname, OS: ep.OS.Family, LastSeen: ep.LastSeen, Stale: end.Sub(ep.LastSeen) > staleAfter}
		for _, u := range ep.Updates {
			if u == nil {
				continue
			}
			switch d := decisions[[2]string{ep.ID, u.ID}].Decision; {
			case d.Drift():
				e.Missing++
			case d == plan.Excluded:
				e.Excluded++
			}
			if u.InstalledAt != nil && !u.InstalledAt.Before(start) && u.InstalledAt.Before(end) {
				e.Installed++
				r.Installs = append(r.Installs, install(client, ep, u, jobRevision))
			}
			if d := decisions[[2]string{ep.ID, u.ID}].Decision; d == plan.NotApproved || d == plan.UnknownClient {
				// Nothing asks for the update: its SLA does not apply.
				continue
			}
			b, err := breach(in.Fleet, client, snap, ep, u, start, end)
			if err != nil {
				return nil, err
			}
			if b != nil {
				r.Breaches = append(r.Breaches, *b)
			}
		}
		r.Endpoints = append(r.Endpoints, e)
	}
	slices.SortStableFunc(r.Installs, func(a, b Install) int { return a.InstalledAt.Compare(b.InstalledAt) })
	slices.SortStableFunc(r.Breaches, func(a, b Breach) int { return a.Due.Compare(b.Due) })
	r.severities(client.SLA)
	return r, nil
}

// install describes one install of the period, judged by client's sla.
func install(client *schema.Client, ep *protocol.Endpoint, u *protocol.Update, jobRevision map[string]string) Install {
	at := *u.InstalledAt
	released := u.ReleasedAt(at)
	in := Install{
		Endpoint: ep.ID, Hostname: ep.Hostname, Update: u.ID, Title: u.Title, Source: u.Source, Severity: u.EffectiveSeverity(),
		Released: u.Released, ReleasedFrom: u.ReleasedFrom, InstalledAt: at, TimeToInstall: Span(at.Sub(released)), Status: NoSLA,
	}
	if due, rule, ok := plan.Due(client, u, at); ok {
		in.Due, in.SLARule, in.SLA = due, rule, Span(due.Sub(released))
		in.Status = WithinSLA
		if at.After(due) {
			in.Status = Late
		}
	}
	for _, a := range slices.Backward(u.Attempts) {
		if a.Result == protocol.ResultSucceeded && a.Job != "" {
			in.Job, in.Revision = a.Job, jobRevision[a.Job]
			break
		}
	}
	return in
}

// breach returns the breach of update u on endpoint ep during [start, end),
// or nil: client's sla sets a due time for the update (plan.Due) before
// end, the update was missing at some moment between its due time (or
// start) and end, and the policy desires it.
func breach(fleet *schema.Fleet, client *schema.Client, snap *protocol.Snapshot, ep *protocol.Endpoint, u *protocol.Update, start, end time.Time) (*Breach, error) {
	due, rule, ok := plan.Due(client, u, end)
	if !ok || !due.Before(end) {
		return nil, nil
	}
	from := due
	if from.Before(start) {
		from = start
	}
	if u.InstalledAt != nil && !u.InstalledAt.After(from) {
		return nil, nil
	}
	if u.InstalledAt == nil && u.Installed {
		// Installed before the agent was enrolled: the controller never
		// saw it missing.
		return nil, nil
	}
	x, err := plan.Explain(fleet, snap, end, ep.ID, u.ID)
	if err != nil {
		return nil, fmt.Errorf("report: endpoint %q: update %q: %w", ep.ID, u.ID, err)
	}
	if !x.Desired {
		return nil, nil
	}
	b := &Breach{
		Endpoint: ep.ID, Hostname: ep.Hostname, Update: u.ID, Title: u.Title, Severity: u.EffectiveSeverity(),
		Released: u.Released, ReleasedFrom: u.ReleasedFrom, Due: due, SLARule: rule, Decision: x.Decision.Decision,
	}
	b.Overdue = Span(end.Sub(due))
	if u.InstalledAt != nil {
		at := *u.InstalledAt
		b.InstalledAt = &at
		if at.Before(end) {
			b.Overdue = Span(at.Sub(due))
		}
	}
	b.Explanation, b.Rule = explain(x)
	return b, nil
}

// explain says what held an update: an exclusion, a halted rollout, a
// freeze, or else the decision's own reason.
func explain(x *plan.Explanation) (string, string) {
	if x.Exclusion != nil {
		return x.Exclusion.Detail, x.Exclusion.Rule
	}
	for _, ro := range x.Rollouts {
		if ro.State == plan.RolloutHalted && ro.Reason != "" {
			return ro.Reason, ro.Rule
		}
	}
	if x.Freeze != nil {
		return "freeze: " + cmpOr(x.Freeze.Detail, "change freeze"), x.Freeze.Rule
	}
	switch x.Decision.Decision {
	case plan.Installed:
		return "installed late; no exclusion or halt covers it", ""
	case plan.Missing:
		return "missing: no exclusion or halt covers it; the next window installs it", x.Decision.Rule
	}
	if x.Decision.Reason != "" {
		return x.Decision.Reason, x.Decision.Rule
	}
	return string(x.Decision.Decision), x.Decision.Rule
}

// audit fills the revisions and job figures of the period from the audit
// log and returns the policy revision of every job it names.
func (r *Report) audit(entries []protocol.AuditEntry, client string) map[string]string {
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b protocol.AuditEntry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	jobRevision := make(map[string]string)
	var before *Revision
	seen := make(map[string]int)
	// reasonOnly marks revisions whose problems are only the refusal's
	// reason word ("invalid", "verify").
	reasonOnly := make(map[int]bool)
	for _, e := range entries {
		if e.Kind == protocol.AuditJobCreated && e.Job != "" {
			jobRevision[e.Job] = e.Revision
		}
		inPeriod := !e.At.Before(r.From) && e.At.Before(r.To)
		switch e.Kind {
		case protocol.AuditRevisionApplied, protocol.AuditRevisionRefused:
			// An applied revision is recorded per client; a refusal may be
			// of the whole fleet (client ""), which stops this client too.
			if e.Client != client && (e.Client != "" || e.Kind != protocol.AuditRevisionRefused) {
				continue
			}
			rev := Revision{Revision: e.Revision, Status: store.RevisionApplied, At: e.At}
			onlyReason := false
			if e.Kind == protocol.AuditRevisionRefused {
				rev.Status = store.RevisionRefused
				rev.Problems, onlyReason = problems(e.Detail)
			}
			if e.At.Before(r.From) {
				if rev.Status == store.RevisionApplied {
					before = &rev
				}
				continue
			}
			if !inPeriod {
				continue
			}
			// The controller records one event in more than one entry (the
			// revision's and the client's); they merge into one line.
			key := rev.Status + "\x00" + rev.Revision + "\x00" + rev.At.String()
			if i, ok := seen[key]; ok {
				// The entry with the problems beats the one with a reason
				// word only.
				if len(r.Revisions[i].Problems) == 0 || reasonOnly[i] && !onlyReason {
					r.Revisions[i].Problems = rev.Problems
					reasonOnly[i] = onlyReason
				}
				continue
			}
			reasonOnly[len(r.Revisions)] = onlyReason
			seen[key] = len(r.Revisions)
			r.Revisions = append(r.Revisions, rev)
		case protocol.AuditJobCreated:
			if inPeriod && e.Client == client {
				r.Jobs.Created++
			}
		case protocol.AuditJobResult:
			if inPeriod && e.Client == client {
				var counts struct{ Succeeded, Failed, Refused, Unknown int }
				if json.Unmarshal(e.Detail, &counts) == nil {
					r.Jobs.Succeeded += counts.Succeeded
					r.Jobs.Failed += counts.Failed
					r.Jobs.Refused += counts.Refused
					r.Jobs.Interrupted += counts.Unknown
				}
			}
		case protocol.AuditJobExpired:
			if inPeriod && e.Client == client {
				r.Jobs.Expired++
			}
		}
	}
	if before != nil {
		r.Revisions = append([]Revision{*before}, r.Revisions...)
	}
	return jobRevision
}

// problems reads the problems of a revision-refused entry's detail, or its
// reason word when it has no problems (then onlyReason is true).
func problems(detail json.RawMessage) (list []string, onlyReason bool) {
	var d struct {
		Problems []string `json:"problems"`
		Reason   string   `json:"reason"`
	}
	if json.Unmarshal(detail, &d) != nil {
		return nil, false
	}
	if len(d.Problems) == 0 && d.Reason != "" {
		return []string{d.Reason}, true
	}
	return d.Problems, false
}

// severities sums installs and breaches per severity: every severity with
// an SLA, then any other severity installed, highest first.
func (r *Report) severities(sla map[string]time.Duration) {
	bySev := make(map[string]*SeverityFigure)
	var times = make(map[string][]time.Duration)
	figure := func(sev string) *SeverityFigure {
		f := bySev[sev]
		if f == nil {
			f = &SeverityFigure{Severity: sev, SLA: Span(sla[sev])}
			bySev[sev] = f
		}
		return f
	}
	for sev := range sla {
		figure(sev)
	}
	for _, in := range r.Installs {
		f := figure(in.Severity)
		f.Installed++
		switch in.Status {
		case WithinSLA:
			f.WithinSLA++
		case Late:
			f.Late++
		}
		times[in.Severity] = append(times[in.Severity], time.Duration(in.TimeToInstall))
	}
	for _, b := range r.Breaches {
		figure(b.Severity).Breaches++
	}
	for sev, f := range bySev {
		ts := times[sev]
		if len(ts) == 0 {
			continue
		}
		slices.Sort(ts)
		f.Longest = Span(ts[len(ts)-1])
		// The median of an even count is the mean of the middle two.
		f.Median = Span((ts[(len(ts)-1)/2] + ts[len(ts)/2]) / 2)
	}
	for _, f := range bySev {
		r.Severities = append(r.Severities, *f)
	}
	slices.SortFunc(r.Severities, func(a, b SeverityFigure) int {
		if c := schema.SeverityRank(b.Severity) - schema.SeverityRank(a.Severity); c != 0 {
			return c
		}
		return strings.Compare(a.Severity, b.Severity)
	})
}

// shortRev is the revision as the report shows it; a plan of a working
// tree has none.
func shortRev(rev string) string {
	return cmpOr(protocol.ShortRevision(rev), "(working tree)")
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
