package loader

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"

	"github.com/patchline/patchline/schema"
)

// rawFleet is a validated client instance as CUE decodes it, before
// durations, dates and times of day are parsed.
type rawFleet struct {
	Client struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Timezone string `json:"timezone"`
	} `json:"client"`
	Mode       string               `json:"mode"`
	StaleAfter string               `json:"staleAfter"`
	SLA        map[string]string    `json:"sla"`
	Freezes    []rawFreeze          `json:"freezes"`
	Windows    map[string]rawWindow `json:"windows"`
	Rings      []rawRing            `json:"rings"`
	Baseline   struct {
		Approve []rawApprove         `json:"approve"`
		Require []schema.Requirement `json:"require"`
	} `json:"baseline"`
	Exclusions []rawExclusion `json:"exclusions"`
	Resume     []rawResume    `json:"resume"`
	Agent      *rawAgent      `json:"agent"`
	Hooks      *rawHooks      `json:"hooks"`
	Guards     *rawGuards     `json:"guards"`
	Emergency  []rawEmergency `json:"emergency"`
	Rollback   []rawRollback  `json:"rollback"`
}

type rawHooks struct {
	Pre     string `json:"pre"`
	Post    string `json:"post"`
	Timeout string `json:"timeout"`
	Shell   string `json:"shell"`
}

type rawGuards struct {
	Processes []string `json:"processes"`
	Wait      string   `json:"wait"`
}

// rawReboot is a ring's reboot: a mode alone, or a struct with settings.
type rawReboot struct {
	Mode       string   `json:"mode"`
	Deferrals  int      `json:"deferrals"`
	DeferFor   string   `json:"deferFor"`
	Deadline   string   `json:"deadline"`
	Warnings   []string `json:"warnings"`
	QuietHours *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"quietHours"`
}

func (r *rawReboot) UnmarshalJSON(b []byte) error {
	var mode string
	if json.Unmarshal(b, &mode) == nil {
		*r = rawReboot{Mode: mode}
		return nil
	}
	type plain rawReboot
	return json.Unmarshal(b, (*plain)(r))
}

type rawEmergency struct {
	Update        string `json:"update"`
	Reason        string `json:"reason"`
	Until         string `json:"until"`
	SkipSoak      bool   `json:"skipSoak"`
	IgnoreWindows bool   `json:"ignoreWindows"`
	IgnoreFreezes bool   `json:"ignoreFreezes"`
}

type rawRollback struct {
	Update string          `json:"update"`
	Select schema.Selector `json:"select"`
	Reason string          `json:"reason"`
	Ticket string          `json:"ticket"`
}

type rawFreeze struct {
	Select schema.Selector `json:"select"`
	From   string          `json:"from"`
	Until  string          `json:"until"`
	Reason string          `json:"reason"`
}

type rawWindow struct {
	Days     []string        `json:"days"`
	Monthly  *schema.Monthly `json:"monthly"`
	Start    string          `json:"start"`
	Duration string          `json:"duration"`
}

type rawRing struct {
	Name           string          `json:"name"`
	Select         schema.Selector `json:"select"`
	Window         string          `json:"window"`
	Soak           string          `json:"soak"`
	MinSuccess     float64         `json:"minSuccess"`
	MaxFailures    float64         `json:"maxFailures"`
	MaxConcurrent  int             `json:"maxConcurrent"`
	MinEndpoints   *int            `json:"minEndpoints"`
	Reboot         rawReboot       `json:"reboot"`
	RebootDeadline string          `json:"rebootDeadline"`
	Agent          *rawAgent       `json:"agent"`
	Hooks          *rawHooks       `json:"hooks"`
	Guards         *rawGuards      `json:"guards"`
}

type rawApprove struct {
	Name           string   `json:"name"`
	Source         any      `json:"source"`
	Category       []string `json:"category"`
	MinSeverity    string   `json:"minSeverity"`
	MinCVSS        float64  `json:"minCVSS"`
	MinEPSS        float64  `json:"minEPSS"`
	KnownExploited *bool    `json:"knownExploited"`
	CVE            []string `json:"cve"`
	Match          string   `json:"match"`
	MinAge         string   `json:"minAge"`
	ReleasedBefore string   `json:"releasedBefore"`
}

type rawExclusion struct {
	Update string          `json:"update"`
	Source string          `json:"source"`
	Match  string          `json:"match"`
	Select schema.Selector `json:"select"`
	Reason string          `json:"reason"`
	Ticket string          `json:"ticket"`
	Until  string          `json:"until"`
}

type rawResume struct {
	Update string `json:"update"`
	Source string `json:"source"`
	Match  string `json:"match"`
	Ring   string `json:"ring"`
	After  string `json:"after"`
}

// at builds a CUE path string for element i of list, with optional
// fields after it: at("rings", 1, "soak") is "rings[1].soak".
func at(list string, i int, fields ...string) string {
	p := fmt.Sprintf("%s[%d]", list, i)
	for _, f := range fields {
		p += "." + f
	}
	return p
}

// label quotes a map key for use in a CUE path.
func label(s string) string { return strconv.Quote(s) }

// showPath formats a CUE path string the way CUE errors do:
// rings[1].soak becomes rings.1.soak.
func showPath(p string) string {
	sels := cue.ParsePath(p).Selectors()
	parts := make([]string, len(sels))
	for i, s := range sels {
		if s.Type() == cue.IndexLabel {
			parts[i] = strconv.Itoa(s.Index())
		} else {
			parts[i] = s.Unquoted()
		}
	}
	return strings.Join(parts, ".")
}

// decode converts raw into a Client, recording a problem for every value
// that does not parse.
func (ev *evaluation) decode(raw *rawFleet) *schema.Client {
	c := &schema.Client{
		ID:       raw.Client.ID,
		Name:     raw.Client.Name,
		Timezone: raw.Client.Timezone,
		Dir:      ev.c.dir,
		Mode:     schema.Mode(raw.Mode),
		ModePos:  ev.writtenPos("mode"),
		Windows:  make(map[string]schema.Window, len(raw.Windows)),
		SLA:      make(map[string]time.Duration, len(raw.SLA)),
	}
	loc, err := time.LoadLocation(c.Timezone)
	switch {
	case c.Timezone == "" || ev.isBad("client.timezone"):
		loc = time.UTC
	case err != nil || c.Timezone == "Local":
		ev.addError(ev.pos("client.timezone"), "client.timezone: unknown time zone %q: use an IANA name such as \"America/Chicago\"", c.Timezone)
		ev.bad["client.timezone"] = true
		loc = time.UTC
	}
	c.Location = loc
	c.StaleAfter = ev.parseDuration("staleAfter", raw.StaleAfter)
	for key, d := range raw.SLA {
		if key == schema.SLAKnownExploited {
			c.KnownExploitedSLA = ev.parseExploitedSLA(d)
			continue
		}
		c.SLA[key] = ev.parseDuration("sla."+key, d)
	}

	c.Freezes = make([]schema.Freeze, 0, len(raw.Freezes))
	for i, f := range raw.Freezes {
		c.Freezes = append(c.Freezes, schema.Freeze{
			Select: f.Select,
			From:   ev.parseDate(at("freezes", i, "from"), f.From, loc, schema.StartOfDay),
			Until:  ev.parseDate(at("freezes", i, "until"), f.Until, loc, schema.EndOfDay),
			Reason: f.Reason,
			Pos:    ev.pos(at("freezes", i)),
		})
	}

	for _, name := range sortedKeys(raw.Windows) {
		w := raw.Windows[name]
		p := "windows." + label(name)
		win := schema.Window{
			Name:     name,
			Days:     w.Days,
			Monthly:  w.Monthly,
			Duration: ev.parseDuration(p+".duration", w.Duration),
			Pos:      ev.pos(p),
		}
		start, err := schema.ParseClock(w.Start)
		if err != nil && !ev.isBad(p+".start") {
			ev.addError(ev.pos(p+".start"), "%s.start: %v", showPath(p), err)
		}
		win.Start = start
		c.Windows[name] = win
	}

	c.Hooks = ev.decodeHooks("hooks", raw.Hooks)
	c.Guards = ev.decodeGuards("guards", raw.Guards)
	c.Rings = make([]schema.Ring, 0, len(raw.Rings))
	for i, r := range raw.Rings {
		ring := schema.Ring{
			Name:           r.Name,
			Select:         r.Select,
			Window:         r.Window,
			Soak:           ev.parseDuration(at("rings", i, "soak"), r.Soak),
			MinSuccess:     r.MinSuccess,
			MaxFailures:    r.MaxFailures,
			MaxConcurrent:  r.MaxConcurrent,
			Reboot:         schema.RebootPolicy(r.Reboot.Mode),
			RebootDeadline: ev.parseDuration(at("rings", i, "rebootDeadline"), r.RebootDeadline),
			Hooks:          ev.decodeHooks(at("rings", i, "hooks"), r.Hooks),
			Guards:         ev.decodeGuards(at("rings", i, "guards"), r.Guards),
			Pos:            ev.pos(at("rings", i)),
			Agent:          ev.agent(at("rings", i, "agent"), r.Agent),
		}
		// Every ring but the last must show the update working on at
		// least one endpoint before the next ring gets it.
		switch {
		case r.MinEndpoints != nil:
			ring.MinEndpoints = *r.MinEndpoints
		case i < len(raw.Rings)-1:
			ring.MinEndpoints = 1
		}
		ev.decodeReboot(i, &r.Reboot, &ring)
		if ring.Hooks == nil {
			ring.Hooks = c.Hooks
		}
		if ring.Guards == nil {
			ring.Guards = c.Guards
		}
		c.Rings = append(c.Rings, ring)
	}

	c.Baseline.Approve = make([]schema.ApproveRule, 0, len(raw.Baseline.Approve))
	for i, a := range raw.Baseline.Approve {
		c.Baseline.Approve = append(c.Baseline.Approve, schema.ApproveRule{
			Name:           a.Name,
			Source:         stringList(a.Source),
			Category:       a.Category,
			MinSeverity:    a.MinSeverity,
			MinCVSS:        a.MinCVSS,
			MinEPSS:        a.MinEPSS,
			KnownExploited: a.KnownExploited,
			CVE:            a.CVE,
			Match:          a.Match,
			MinAge:         ev.parseDuration(at("baseline.approve", i, "minAge"), a.MinAge),
			ReleasedBefore: ev.parseDate(at("baseline.approve", i, "releasedBefore"), a.ReleasedBefore, loc, schema.StartOfDay),
			Pos:            ev.pos(at("baseline.approve", i)),
		})
	}
	c.Baseline.Require = make([]schema.Requirement, 0, len(raw.Baseline.Require))
	for i, r := range raw.Baseline.Require {
		r.Pos = ev.pos(at("baseline.require", i))
		c.Baseline.Require = append(c.Baseline.Require, r)
	}

	c.Exclusions = make([]schema.Exclusion, 0, len(raw.Exclusions))
	for i, x := range raw.Exclusions {
		c.Exclusions = append(c.Exclusions, schema.Exclusion{
			Update: x.Update,
			Source: x.Source,
			Match:  x.Match,
			Select: x.Select,
			Reason: x.Reason,
			Ticket: x.Ticket,
			Until:  ev.parseDate(at("exclusions", i, "until"), x.Until, loc, schema.EndOfDay),
			Pos:    ev.pos(at("exclusions", i)),
		})
	}
	c.Agent = ev.agent("agent", raw.Agent)
	for i, e := range raw.Emergency {
		c.Emergency = append(c.Emergency, schema.Emergency{
			Update:        e.Update,
			Reason:        e.Reason,
			Until:         ev.parseDate(at("emergency", i, "until"), e.Until, loc, schema.EndOfDay),
			SkipSoak:      e.SkipSoak,
			IgnoreWindows: e.IgnoreWindows,
			IgnoreFreezes: e.IgnoreFreezes,
			Pos:           ev.pos(at("emergency", i)),
		})
	}
	for i, r := range raw.Rollback {
		c.Rollback = append(c.Rollback, schema.Rollback{
			Update: r.Update, Select: r.Select, Reason: r.Reason, Ticket: r.Ticket, Pos: ev.pos(at("rollback", i)),
		})
	}
	c.Resume = make([]schema.Resume, 0, len(raw.Resume))
	for i, r := range raw.Resume {
		c.Resume = append(c.Resume, schema.Resume{
			Update: r.Update,
			Source: r.Source,
			Match:  r.Match,
			Ring:   r.Ring,
			After:  ev.parseDate(at("resume", i, "after"), r.After, loc, schema.StartOfDay),
			Pos:    ev.pos(at("resume", i)),
		})
	}
	return c
}

// decodeReboot fills the reboot settings of ring i from r: a struct's
// deadline is the ring's reboot deadline (rebootDeadline says the same
// for force, and the two must not both be written).
func (ev *evaluation) decodeReboot(i int, r *rawReboot, ring *schema.Ring) {
	p := at("rings", i, "reboot")
	if r.Deadline != "" {
		d := ev.parseDuration(p+".deadline", r.Deadline)
		if ring.RebootDeadline > 0 && !ev.isBad(p+".deadline") {
			ev.addError(ev.pos(p+".deadline"), "%s.deadline: the ring also sets rebootDeadline; write the deadline once, in reboot.deadline", showPath(p))
		}
		ring.RebootDeadline = d
	}
	o := &ring.RebootOptions
	o.Deferrals = r.Deferrals
	o.DeferFor = ev.parseDuration(p+".deferFor", r.DeferFor)
	for k, w := range r.Warnings {
		o.Warnings = append(o.Warnings, ev.parseDuration(fmt.Sprintf("%s.warnings[%d]", p, k), w))
	}
	if r.QuietHours != nil {
		q := &schema.QuietHours{}
		var err error
		if q.Start, err = schema.ParseClock(r.QuietHours.Start); err != nil && !ev.isBad(p+".quietHours.start") {
			ev.addError(ev.pos(p+".quietHours.start"), "%s.quietHours.start: %v", showPath(p), err)
		}
		if q.End, err = schema.ParseClock(r.QuietHours.End); err != nil && !ev.isBad(p+".quietHours.end") {
			ev.addError(ev.pos(p+".quietHours.end"), "%s.quietHours.end: %v", showPath(p), err)
		}
		o.QuietHours = q
	}
}

// decodeHooks decodes the hooks at p, nil when none are written. The
// scripts' content is read later, from the repository (scripts.go).
func (ev *evaluation) decodeHooks(p string, r *rawHooks) *schema.Hooks {
	if r == nil {
		return nil
	}
	h := &schema.Hooks{Timeout: schema.DefaultHookTimeout, Pos: ev.pos(p)}
	if r.Timeout != "" {
		h.Timeout = ev.parseDuration(p+".timeout", r.Timeout)
	}
	script := func(field, path string) *schema.Script {
		if path == "" {
			return nil
		}
		s := &schema.Script{Path: path, Shell: r.Shell, Pos: ev.pos(p + "." + field)}
		if s.Shell == "" {
			switch {
			case strings.HasSuffix(path, ".ps1"):
				s.Shell = schema.ShellPowerShell
			case strings.HasSuffix(path, ".sh"):
				s.Shell = schema.ShellSh
			}
		}
		return s
	}
	h.Pre, h.Post = script("pre", r.Pre), script("post", r.Post)
	return h
}

// decodeGuards decodes the guards at p, nil when none are written.
func (ev *evaluation) decodeGuards(p string, r *rawGuards) *schema.Guards {
	if r == nil {
		return nil
	}
	g := &schema.Guards{Processes: r.Processes, Wait: schema.DefaultGuardWait, Pos: ev.pos(p)}
	if r.Wait != "" {
		g.Wait = ev.parseDuration(p+".wait", r.Wait)
	}
	return g
}

// parseExploitedSLA parses sla.knownExploited: a duration, or "cisa" for
// CISA's due date.
func (ev *evaluation) parseExploitedSLA(s string) *schema.ExploitedSLA {
	p := "sla." + schema.SLAKnownExploited
	x := &schema.ExploitedSLA{Pos: ev.pos(p)}
	if s == "cisa" {
		x.CISA = true
		return x
	}
	d, err := schema.ParseDuration(s)
	if err != nil {
		ev.addError(x.Pos, "%s: invalid value %q: use a duration such as \"14d\", or \"cisa\" for CISA's due date", p, s)
		ev.bad[p] = true
	}
	x.Within = d
	return x
}

// stringList normalises a value that CUE allows to be a string or a list
// of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// vet checks what the schema cannot express, leaving out each check for
// which a value it needs has an error of its own (see isBad).
func (ev *evaluation) vet(c *schema.Client) {
	if c.ID != ev.c.id && c.ID != "" && !ev.isBad("client.id") {
		ev.addError(ev.pos("client.id"), "client.id: %q does not match the directory name %q; they must be equal", c.ID, ev.c.id)
	}

	for i, f := range c.Freezes {
		if !f.From.IsZero() && !f.Until.IsZero() && !f.From.Before(f.Until) {
			ev.addError(f.Pos, "freezes.%d: until must be after from", i)
		}
	}

	for _, name := range sortedKeys(c.Windows) {
		w := c.Windows[name]
		p := "windows." + label(name)
		switch {
		case ev.isBad(p+".days") || ev.isBad(p+".monthly"):
		case len(w.Days) == 0 && w.Monthly == nil:
			ev.addError(w.Pos, "windows.%s: give either days or monthly", name)
		case len(w.Days) > 0 && w.Monthly != nil:
			ev.addError(w.Pos, "windows.%s: give days or monthly, not both", name)
		}
		if (w.Duration <= 0 || w.Duration > 7*24*time.Hour) && !ev.isBad(p+".duration") {
			ev.addError(ev.pos(p+".duration"), "windows.%s.duration: must be more than 0 and at most 7d", name)
		}
	}

	first := make(map[string]schema.Pos)
	// names says whether every ring's name is known, so that a name
	// missing from first is really no ring's.
	names := !ev.bad["rings"]
	for i, r := range c.Rings {
		if ev.isBad(at("rings", i, "name")) || r.Name == "" {
			names = false
		} else if p, dup := first[r.Name]; dup {
			ev.addError(ev.pos(at("rings", i, "name")), "rings.%d.name: duplicate ring name %q (first at %s)", i, r.Name, p)
		} else {
			first[r.Name] = r.Pos
		}
		if _, ok := c.Windows[r.Window]; !ok && r.Window != "" && !ev.isBad(at("rings", i, "window")) && !ev.isBad("windows."+label(r.Window)) {
			ev.addError(ev.pos(at("rings", i, "window")), "rings.%d.window: unknown window %q; windows are: %s", i, r.Window, strings.Join(sortedKeys(c.Windows), ", "))
		}
		ev.vetReboot(i, &r)
		if r.Hooks != c.Hooks {
			ev.vetHooks(at("rings", i, "hooks"), r.Hooks)
		}
		if r.Guards != c.Guards {
			ev.vetGuards(at("rings", i, "guards"), r.Guards)
		}
	}
	ev.vetHooks("hooks", c.Hooks)
	ev.vetGuards("guards", c.Guards)
	switch n := len(c.Rings); {
	case ev.isBad("rings"):
	case n == 0:
		ev.addWarning(ev.pos("client"), "rings: the client has no ring, so no endpoint receives updates")
	case !selectsAll(c.Rings[n-1].Select) && !ev.isBad(at("rings", n-1, "select")):
		ev.addWarning(ev.pos(at("rings", n-1, "select")), "rings.%d.select: the last ring does not select every endpoint; endpoints it misses get no updates (use select: {})", n-1)
	}

	for i, a := range c.Baseline.Approve {
		ev.checkGlob(at("baseline.approve", i, "match"), a.Match)
	}
	for i, r := range c.Baseline.Require {
		p := at("baseline.require", i)
		if r.ID == "" && (r.Source == "" || r.Match == "") && !ev.anyBad(p, "id", "source", "match") {
			ev.addError(r.Pos, "baseline.require.%d: name the update with id, or with source and match", i)
		}
		ev.checkGlob(at("baseline.require", i, "match"), r.Match)
	}
	for i, x := range c.Exclusions {
		p := at("exclusions", i)
		if x.Update == "" && (x.Source == "" || x.Match == "") && !ev.anyBad(p, "update", "source", "match") {
			ev.addError(x.Pos, "exclusions.%d: name the update with update, or with source and match", i)
		}
		if strings.TrimSpace(x.Reason) == "" && !ev.anyBad(p, "reason") {
			ev.addError(x.Pos, "exclusions.%d: missing reason: say why the update is held", i)
		}
		if x.Until.IsZero() && !ev.anyBad(p, "until") {
			ev.addError(x.Pos, "exclusions.%d: missing until: every exclusion needs an expiry date, e.g. until: %q", i, examples["exclusions[].until"])
		}
		ev.checkGlob(at("exclusions", i, "match"), x.Match)
	}
	for i, r := range c.Rollback {
		p := at("rollback", i)
		if strings.ContainsAny(r.Update, "*?[") && !ev.anyBad(p, "update") {
			ev.addError(ev.pos(p+".update"), "rollback.%d.update: name one update by its id (\"KB5099999\", \"openssl@3.0.15-1~deb12u1\"), not a pattern", i)
		}
	}
	for i, r := range c.Resume {
		p := at("resume", i)
		if r.Update == "" && (r.Source == "" || r.Match == "") && !ev.anyBad(p, "update", "source", "match") {
			ev.addError(r.Pos, "resume.%d: name the update with update, or with source and match", i)
		}
		if _, ok := first[r.Ring]; r.Ring != "" && !ok && names && !ev.isBad(at("resume", i, "ring")) {
			ev.addError(ev.pos(at("resume", i, "ring")), "resume.%d.ring: unknown ring %q", i, r.Ring)
		}
		ev.checkGlob(at("resume", i, "match"), r.Match)
	}
}

// vetReboot checks the reboot settings of ring i against its mode.
func (ev *evaluation) vetReboot(i int, r *schema.Ring) {
	p := at("rings", i, "reboot")
	if ev.isBad(p) {
		return
	}
	o := &r.RebootOptions
	if r.Reboot.NeedsDeadline() && r.RebootDeadline == 0 && !ev.isBad(at("rings", i, "rebootDeadline")) {
		ev.addError(ev.pos(p), "rings.%d.reboot: %q needs a rebootDeadline, e.g. rebootDeadline: \"24h\" or reboot: {mode: %q, deadline: \"24h\"}", i, r.Reboot, r.Reboot)
	}
	if r.Reboot != schema.RebootPrompt {
		if o.Deferrals > 0 || o.DeferFor > 0 || o.QuietHours != nil {
			ev.addError(ev.pos(p), "rings.%d.reboot: deferrals, deferFor and quietHours apply to mode \"prompt\" only, not %q", i, r.Reboot)
		}
	} else if o.Deferrals > 0 && o.DeferFor == 0 {
		ev.addError(ev.pos(p), "rings.%d.reboot: %d deferrals need deferFor, how long each postpones the reboot, e.g. deferFor: \"4h\"", i, o.Deferrals)
	}
	if len(o.Warnings) > 0 && !r.Reboot.NeedsDeadline() {
		ev.addError(ev.pos(p+".warnings"), "rings.%d.reboot.warnings: warnings come before a deadline reboot (force, always, prompt), not %q", i, r.Reboot)
	}
	for k, w := range o.Warnings {
		if r.RebootDeadline > 0 && w > r.RebootDeadline {
			ev.addError(ev.pos(fmt.Sprintf("%s.warnings[%d]", p, k)), "rings.%d.reboot.warnings.%d: %s before the reboot is earlier than the job's end (deadline %s)", i, k, w, r.RebootDeadline)
		}
	}
	if q := o.QuietHours; q != nil && q.Start == q.End && !ev.isBad(p+".quietHours") {
		ev.addError(ev.pos(p+".quietHours"), "rings.%d.reboot.quietHours: start and end are equal; give a span such as {start: \"22:00\", end: \"07:00\"}", i)
	}
	if o.Deferrals > 0 && r.RebootDeadline > 0 && time.Duration(o.Deferrals)*o.DeferFor > r.RebootDeadline {
		ev.addWarning(ev.pos(p), "rings.%d.reboot: %d deferrals of %s add up to more than the deadline %s; the reboot comes at the deadline with deferrals left", i, o.Deferrals, o.DeferFor, r.RebootDeadline)
	}
}

// vetHooks checks the hooks at p: at least one script, each with a path
// under the repository's scripts directories and a known shell.
func (ev *evaluation) vetHooks(p string, h *schema.Hooks) {
	if h == nil || ev.isBad(p) {
		return
	}
	if h.Pre == nil && h.Post == nil {
		ev.addError(h.Pos, "%s: give pre, post or both, e.g. pre: \"scripts/stop-app.ps1\"", showPath(p))
	}
	if h.Timeout <= 0 && !ev.isBad(p+".timeout") {
		ev.addError(ev.pos(p+".timeout"), "%s.timeout: must be more than 0", showPath(p))
	}
	for _, s := range []*schema.Script{h.Pre, h.Post} {
		if s == nil {
			continue
		}
		if msg := scriptPathProblem(s.Path, ev.c.dir); msg != "" {
			ev.addError(s.Pos, "%s", msg)
		}
		if s.Shell == "" {
			ev.addError(s.Pos, "%s: cannot tell the shell of %q: end it in .ps1 (PowerShell) or .sh (sh), or set shell: \"powershell\" or \"sh\"", showPath(p), s.Path)
		}
	}
}

// scriptPathProblem says what is wrong with a hook's path, "" when
// nothing: it must be a clean path under scripts/ or the client's own
// scripts/ directory (dir/scripts/).
func scriptPathProblem(p, dir string) string {
	if path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "../") || strings.Contains(p, "\\") {
		return fmt.Sprintf("hook script %q: write a clean path from the repository root, e.g. \"scripts/stop-app.ps1\"", p)
	}
	if !strings.HasPrefix(p, "scripts/") && !strings.HasPrefix(p, dir+"/scripts/") {
		return fmt.Sprintf("hook script %q: scripts live under scripts/ or %s/scripts/ in the fleet repository", p, dir)
	}
	return ""
}

// vetGuards checks the guards at p.
func (ev *evaluation) vetGuards(p string, g *schema.Guards) {
	if g == nil || ev.isBad(p) {
		return
	}
	if len(g.Processes) == 0 && !ev.isBad(p+".processes") {
		ev.addError(g.Pos, "%s.processes: name at least one process, e.g. processes: [\"ehr.exe\"]", showPath(p))
	}
	if g.Wait <= 0 && !ev.isBad(p+".wait") {
		ev.addError(ev.pos(p+".wait"), "%s.wait: must be more than 0", showPath(p))
	}
}

// isBad says whether the value at the CUE path p (rings[1].soak), one
// that holds it (rings[1], rings) or one inside it has an error.
func (ev *evaluation) isBad(p string) bool {
	if len(ev.bad) == 0 {
		return false
	}
	d := showPath(p)
	for k := range ev.bad {
		if k == d || strings.HasPrefix(k, d+".") || strings.HasPrefix(d, k+".") {
			return true
		}
	}
	return false
}

// anyBad says whether any of the fields of the value at p is bad.
func (ev *evaluation) anyBad(p string, fields ...string) bool {
	for _, f := range fields {
		if ev.isBad(p + "." + f) {
			return true
		}
	}
	return false
}

// decodeLeniently decodes into raw what of u has no error, marking each
// value it leaves out as bad, so that the checks of vet run on the rest.
func (ev *evaluation) decodeLeniently(u cue.Value, raw *rawFleet) {
	b, err := json.Marshal(ev.plain(u, ""))
	if err != nil {
		return
	}
	// A value of another type than raw's field stays zero; Unmarshal
	// fills the rest.
	_ = json.Unmarshal(b, raw)
}

// plain is v as JSON-encodable values, without the values that have an
// error or are not concrete (nil for those). A list keeps a nil element
// in place, so that indexes still match the files.
func (ev *evaluation) plain(v cue.Value, path string) any {
	if d, ok := v.Default(); ok {
		v = d
	}
	if it, err := v.List(); err == nil {
		l := []any{}
		for i := 0; it.Next(); i++ {
			l = append(l, ev.plain(it.Value(), join(path, strconv.Itoa(i))))
		}
		return l
	}
	// A list or struct with an error inside is bottom, and List fails on
	// it; Fields still iterates it, with index selectors for a list.
	if it, err := v.Fields(); err == nil {
		m := make(map[string]any)
		var l []any
		isList := v.IncompleteKind() == cue.ListKind
		for it.Next() {
			sel := it.Selector()
			switch {
			case sel.Type() == cue.IndexLabel:
				isList = true
				l = append(l, ev.plain(it.Value(), join(path, strconv.Itoa(sel.Index()))))
			case sel.IsString():
				if x := ev.plain(it.Value(), join(path, sel.Unquoted())); x != nil {
					m[sel.Unquoted()] = x
				}
			}
		}
		if isList {
			if l == nil {
				l = []any{}
			}
			return l
		}
		return m
	}
	if v.Err() == nil && v.IsConcrete() {
		if b, err := v.MarshalJSON(); err == nil {
			return json.RawMessage(b)
		}
	}
	ev.bad[path] = true
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// checkGlob records an error when the glob at p is not a valid path.Match
// pattern.
func (ev *evaluation) checkGlob(p, glob string) {
	if glob == "" {
		return
	}
	if _, err := path.Match(glob, ""); err != nil {
		ev.addError(ev.pos(p), "%s: invalid glob %q: %v", showPath(p), glob, err)
	}
}

// selectsAll says whether s matches every endpoint.
func selectsAll(s schema.Selector) bool {
	return len(s.Labels) == 0 && len(s.Hostnames) == 0 && len(s.Endpoints) == 0 && len(s.OS) == 0
}

// timeWarnings are the warnings about c that depend on now: exclusions
// that expired or expire soon, and resume entries dated in the future.
// They are computed at each load, outside the cache.
func timeWarnings(c *schema.Client, now time.Time) []schema.Problem {
	out := append(expiryWarnings(c, now), futureResumeWarnings(c, now)...)
	return append(out, emergencyWarnings(c, now)...)
}

// emergencyWarnings warns about emergency entries whose until has
// passed: they no longer let anything through.
func emergencyWarnings(c *schema.Client, now time.Time) []schema.Problem {
	var out []schema.Problem
	for i, e := range c.Emergency {
		if e.Until.IsZero() || e.Active(now) {
			continue
		}
		loc := c.Location
		if loc == nil {
			loc = time.UTC
		}
		p := schema.Problem{Pos: e.Pos, Level: schema.LevelWarning, Message: fmt.Sprintf(
			"emergency.%d: expired after %s; %s goes through windows and soaks like any update again: remove the entry",
			i, e.Until.Add(-time.Nanosecond).In(loc).Format(time.DateOnly), e.Update)}
		if strings.HasPrefix(e.Pos.File, c.Dir+"/") {
			p.Client = c.ID
		}
		out = append(out, p)
	}
	return out
}

// futureResumeWarnings warns about resume entries whose after is later
// than now: such an entry forgives failures that have not happened yet,
// so until then no failure of the update can halt its rollout.
func futureResumeWarnings(c *schema.Client, now time.Time) []schema.Problem {
	var out []schema.Problem
	for i, r := range c.Resume {
		if !r.After.After(now) {
			continue
		}
		where := ""
		if r.Ring != "" {
			where = " in ring " + r.Ring
		}
		loc := c.Location
		if loc == nil {
			loc = time.UTC
		}
		p := schema.Problem{Pos: r.Pos, Level: schema.LevelWarning, Message: fmt.Sprintf(
			"resume.%d: after %s is in the future: until then it forgives every failure of the update%s, so its rollout cannot halt however often it fails; set after to when the cause was fixed (no later than now)",
			i, r.After.In(loc).Format("2006-01-02 15:04 MST"), where)}
		if strings.HasPrefix(r.Pos.File, c.Dir+"/") {
			p.Client = c.ID
		}
		out = append(out, p)
	}
	return out
}

// expiryWarnings warns about exclusions that have expired or expire
// within 14 days of now.
func expiryWarnings(c *schema.Client, now time.Time) []schema.Problem {
	const soon = 14 * 24 * time.Hour
	var out []schema.Problem
	for i, x := range c.Exclusions {
		if x.Until.IsZero() {
			continue
		}
		last := x.Until.Add(-time.Nanosecond).In(c.Location).Format(time.DateOnly)
		var msg string
		switch {
		case !now.Before(x.Until):
			msg = fmt.Sprintf("exclusions.%d: expired after %s; it no longer holds the update: remove it or extend until", i, last)
		case x.Until.Sub(now) <= soon:
			days := int(x.Until.Sub(now).Hours() / 24)
			msg = fmt.Sprintf("exclusions.%d: expires after %s (in %d days)", i, last, days)
		default:
			continue
		}
		p := schema.Problem{Pos: x.Pos, Level: schema.LevelWarning, Message: msg}
		if strings.HasPrefix(x.Pos.File, c.Dir+"/") {
			p.Client = c.ID
		}
		out = append(out, p)
	}
	return out
}
