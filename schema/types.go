package schema

import (
	"fmt"
	"time"
)

// Pos is a position in a fleet repository file. File is slash-separated and
// relative to the repository root ("clients/acme/policy.cue").
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String formats p as path:line:col, the form every user-facing error uses.
func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Rule formats p as path:line, the form decisions use to name the rule that
// produced them.
func (p Pos) Rule() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Mode says whether a client receives jobs.
type Mode string

// Modes a client can be in.
const (
	// ModeEnforce computes decisions and sends jobs.
	ModeEnforce Mode = "enforce"
	// ModeReport computes decisions and metrics but sends no job; used while
	// onboarding a client.
	ModeReport Mode = "report"
)

// RebootPolicy is what an agent does about reboots after a job.
type RebootPolicy string

// Reboot policies.
const (
	RebootNever      RebootPolicy = "never"
	RebootIfRequired RebootPolicy = "if-required"
	// RebootForce reboots at the deadline when a reboot is pending,
	// warning people before it.
	RebootForce RebootPolicy = "force"
	// RebootAlways is force whether or not a reboot is pending.
	RebootAlways RebootPolicy = "always"
	// RebootPrompt asks the logged-in people, who may postpone it, and
	// reboots at the deadline whatever they do.
	RebootPrompt RebootPolicy = "prompt"
)

// NeedsDeadline reports whether the policy reboots at a deadline, which
// the ring must then give.
func (r RebootPolicy) NeedsDeadline() bool {
	return r == RebootForce || r == RebootAlways || r == RebootPrompt
}

// RebootOptions are a ring's reboot settings beyond its mode and deadline.
type RebootOptions struct {
	// Deferrals is how many times people may postpone a prompt, each
	// time by DeferFor.
	Deferrals int           `json:"deferrals,omitempty"`
	DeferFor  time.Duration `json:"deferFor,omitempty"`
	// Warnings are how long before the reboot people are warned, longest
	// first.
	Warnings []time.Duration `json:"warnings,omitempty"`
	// QuietHours, when set, is a daily span of local time in which no
	// prompt is shown.
	QuietHours *QuietHours `json:"quietHours,omitempty"`
}

// QuietHours is a daily span of the client's local time, as minutes after
// midnight; End before Start spans midnight.
type QuietHours struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Hooks are the reviewed scripts run before (Pre) and after (Post) a
// job's installs, each bounded by Timeout.
type Hooks struct {
	Pre     *Script       `json:"pre,omitempty"`
	Post    *Script       `json:"post,omitempty"`
	Timeout time.Duration `json:"timeout"`
	Pos     Pos           `json:"pos"`
}

// Script is a script of the fleet repository a hook names. The loader
// reads it at the revision it loads: Content is the file's text and
// SHA256 its lower-case hex SHA-256.
type Script struct {
	// Path is the script's slash-separated path from the repository root.
	Path string `json:"path"`
	// Shell is "powershell" or "sh".
	Shell   string `json:"shell"`
	Content string `json:"content,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Pos     Pos    `json:"pos"`
}

// Script shells.
const (
	ShellPowerShell = "powershell"
	ShellSh         = "sh"
)

// MaxScriptBytes bounds a hook script: it travels whole in every job.
const MaxScriptBytes = 64 << 10

// DefaultHookTimeout bounds each hook script when the policy sets no
// timeout.
const DefaultHookTimeout = 10 * time.Minute

// Guards keep a job from starting while one of Processes runs; the agent
// waits up to Wait, then defers the job to the next window.
type Guards struct {
	Processes []string      `json:"processes"`
	Wait      time.Duration `json:"wait"`
	Pos       Pos           `json:"pos"`
}

// DefaultGuardWait is how long an agent waits for guarded processes when
// the policy sets no wait.
const DefaultGuardWait = 30 * time.Minute

// Severity order: low < moderate < important < critical.
var severityRank = map[string]int{"low": 1, "moderate": 2, "important": 3, "critical": 4}

// SeverityRank returns the rank of a severity name (1 for low up to 4 for
// critical) and 0 for an unknown or empty severity, which is below every
// known one.
func SeverityRank(s string) int { return severityRank[s] }

// Fleet is a fleet repository evaluated at one revision.
type Fleet struct {
	// Revision is the commit hash the fleet was loaded from, or "" when it
	// was loaded from a plain directory.
	Revision string `json:"revision"`
	// Clients holds every client that loaded and validated, by id. A client
	// with an error-level problem is absent here and its problems are in
	// Problems.
	Clients map[string]*Client `json:"clients"`
	// Problems are every error and warning found, sorted by position.
	Problems []Problem `json:"problems,omitempty"`
}

// Severity of a Problem.
type ProblemLevel string

// Problem levels.
const (
	LevelError   ProblemLevel = "error"
	LevelWarning ProblemLevel = "warning"
)

// Problem is one finding of loading or vetting a fleet repository.
type Problem struct {
	Pos     Pos          `json:"pos"`
	Level   ProblemLevel `json:"level"`
	Message string       `json:"message"`
	// Client is the id of the client directory the problem belongs to, or
	// "" for a problem in the root files, which affects every client.
	Client string `json:"client,omitempty"`
}

// String formats the problem as "path:line:col: message", prefixing
// warnings with "warning: ".
func (p Problem) String() string {
	if p.Level == LevelWarning {
		return fmt.Sprintf("%s: warning: %s", p.Pos, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.Pos, p.Message)
}

// Client is one MSP customer's evaluated policy.
type Client struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Timezone string `json:"timezone"`
	// Location is Timezone loaded with time.LoadLocation.
	Location *time.Location `json:"-"`
	// Dir is the client's directory, "clients/<id>".
	Dir string `json:"dir"`
	// Digest is a hash of every file that makes up the client (its own and
	// the root files); equal digests mean equal policy.
	Digest string `json:"digest"`

	Mode Mode `json:"mode"`
	// ModePos is where the mode is set (the client's mode, or
	// defaults.mode in the root files); the zero Pos when no file sets it
	// and the default applies.
	ModePos    Pos               `json:"modePos,omitzero"`
	Freezes    []Freeze          `json:"freezes"`
	Windows    map[string]Window `json:"windows"`
	Rings      []Ring            `json:"rings"`
	Baseline   Baseline          `json:"baseline"`
	Exclusions []Exclusion       `json:"exclusions"`
	Resume     []Resume          `json:"resume"`
	// Hooks and Guards are the client's, which every ring without its own
	// takes (Ring.Hooks, Ring.Guards); nil for none.
	Hooks  *Hooks  `json:"hooks,omitempty"`
	Guards *Guards `json:"guards,omitempty"`
	// Emergency lists the emergency entries, expired ones included (the
	// planner leaves those out).
	Emergency []Emergency `json:"emergency,omitempty"`
	Rollback  []Rollback  `json:"rollback,omitempty"`
	// StaleAfter is how long an endpoint may go unseen before it stops
	// counting towards ring progress and compliance (default 7d).
	StaleAfter time.Duration `json:"staleAfter"`
	// SLA maps a severity to how long a desired update of that severity may
	// stay missing after its release (default critical and important: 30d,
	// the PCI DSS 6.3.3 rule).
	SLA map[string]time.Duration `json:"sla"`
	// KnownExploitedSLA, when set, is the SLA of a desired update that is
	// known exploited, in place of its severity's (sla.knownExploited).
	KnownExploitedSLA *ExploitedSLA `json:"knownExploitedSLA,omitempty"`
	// Agent is the agent version the client's endpoints run, nil when
	// the policy names none (agents are left as they are); a ring's
	// Agent wins over it.
	Agent *AgentPolicy `json:"agent,omitempty"`
}

// SLAKnownExploited is the key of a policy's sla that holds the SLA of
// known-exploited updates (Client.KnownExploitedSLA) rather than a
// severity's.
const SLAKnownExploited = "knownExploited"

// ExploitedSLA is how long a known-exploited update may stay missing:
// Within of becoming known exploited (the later of its release and its
// listing by CISA), or, with CISA set, until the end of CISA's due date.
type ExploitedSLA struct {
	Within time.Duration `json:"within,omitempty"`
	// CISA: the update is due by CISA's due date in the Known Exploited
	// Vulnerabilities catalog.
	CISA bool `json:"cisa,omitempty"`
	Pos  Pos  `json:"pos"`
}

// Selector picks endpoints. Every non-empty field must match; an empty
// selector matches every endpoint.
type Selector struct {
	// Labels must all be present with equal values.
	Labels map[string]string `json:"labels,omitempty"`
	// Hostnames match case-insensitively; any one suffices.
	Hostnames []string `json:"hostnames,omitempty"`
	// Endpoints are endpoint ids; any one suffices.
	Endpoints []string `json:"endpoints,omitempty"`
	// OS are OS families (windows, linux, macos); any one suffices.
	OS []string `json:"os,omitempty"`
}

// Freeze is a change freeze: no job starts for the selected endpoints
// between From and Until.
type Freeze struct {
	Select Selector  `json:"select"`
	From   time.Time `json:"from"`
	// Until is exclusive: a date "2027-01-04" means the freeze lasts to the
	// end of that day in the client's time zone.
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	Pos    Pos       `json:"pos"`
}

// Window is a recurring maintenance window in the client's time zone.
// Exactly one of Days and Monthly is set.
type Window struct {
	Name string `json:"name"`
	// Days are weekday names ("mon".."sun") on which the window opens.
	Days []string `json:"days,omitempty"`
	// Monthly opens the window once a month.
	Monthly *Monthly `json:"monthly,omitempty"`
	// Start is the local opening time as minutes after midnight.
	Start int `json:"start"`
	// Duration is how long the window stays open; it may cross midnight.
	Duration time.Duration `json:"duration"`
	Pos      Pos           `json:"pos"`
}

// Monthly is "the Week-th Weekday of the month, plus OffsetDays days".
type Monthly struct {
	Weekday    string `json:"weekday"`
	Week       int    `json:"week"`
	OffsetDays int    `json:"offsetDays"`
}

// Ring is one ordered rollout stage.
type Ring struct {
	Name   string   `json:"name"`
	Select Selector `json:"select"`
	// Window names an entry of Client.Windows.
	Window      string        `json:"window"`
	Soak        time.Duration `json:"soak"`
	MinSuccess  float64       `json:"minSuccess"`
	MaxFailures float64       `json:"maxFailures"`
	// MaxConcurrent caps how many of the ring's endpoints hold an open job
	// at once; 0 means no cap.
	MaxConcurrent int `json:"maxConcurrent"`
	// MinEndpoints is how many of the ring's endpoints must count (fresh,
	// not excluded) and have the update before the ring passes; until
	// then the next ring waits. The loader makes it 1 for every ring but
	// the last and 0 for the last when the policy does not set it.
	MinEndpoints int          `json:"minEndpoints"`
	Reboot       RebootPolicy `json:"reboot"`
	// RebootDeadline is how long after the job the endpoint reboots at
	// the latest (force, always, prompt): the reboot's deadline, or the
	// ring's rebootDeadline.
	RebootDeadline time.Duration `json:"rebootDeadline"`
	RebootOptions  RebootOptions `json:"rebootOptions,omitzero"`
	// Hooks and Guards are the ring's own, else the client's; nil for
	// none.
	Hooks  *Hooks  `json:"hooks,omitempty"`
	Guards *Guards `json:"guards,omitempty"`
	Pos    Pos     `json:"pos"`
	// Agent is the agent version of the ring's endpoints, in place of
	// the client's; nil to take the client's.
	Agent *AgentPolicy `json:"agent,omitempty"`
}

// Baseline is a client's desired patch state.
type Baseline struct {
	Approve []ApproveRule `json:"approve"`
	Require []Requirement `json:"require"`
}

// ApproveRule makes an available update desired when every set field
// matches it.
type ApproveRule struct {
	Name string `json:"name"`
	// Source lists update sources (apt, winget, windows-update, choco,
	// brew); empty means any.
	Source []string `json:"source,omitempty"`
	// Category lists categories; empty means any.
	Category []string `json:"category,omitempty"`
	// MinSeverity is the lowest severity approved; "" means any.
	MinSeverity string `json:"minSeverity,omitempty"`
	// MinCVSS is the lowest CVSS score approved; 0 means any.
	MinCVSS float64 `json:"minCVSS,omitempty"`
	// MinEPSS is the lowest EPSS probability (0 to 1) approved; 0 means
	// any.
	MinEPSS float64 `json:"minEPSS,omitempty"`
	// KnownExploited, when set, must equal whether the update is known
	// exploited.
	KnownExploited *bool `json:"knownExploited,omitempty"`
	// CVE lists CVE ids; the rule matches an update that fixes any of
	// them. Empty means any.
	CVE []string `json:"cve,omitempty"`
	// Match is a path.Match glob on the update's name; "" means any.
	Match string `json:"match,omitempty"`
	// MinAge: the update is approved once released+MinAge <= now.
	MinAge time.Duration `json:"minAge,omitempty"`
	// ReleasedBefore, when not zero, approves only updates released before it.
	ReleasedBefore time.Time `json:"releasedBefore,omitzero"`
	Pos            Pos       `json:"pos"`
}

// Requirement makes an update desired regardless of approve rules: either by
// ID, or every update of Source whose name matches Match at MinVersion or
// later (in the source's own version ordering).
type Requirement struct {
	ID         string `json:"id,omitempty"`
	Source     string `json:"source,omitempty"`
	Match      string `json:"match,omitempty"`
	MinVersion string `json:"minVersion,omitempty"`
	Pos        Pos    `json:"pos"`
}

// Exclusion is a hold on an update for selected endpoints. It names the
// update by Update (an update id or name) or by Source and Match glob.
type Exclusion struct {
	Update string   `json:"update,omitempty"`
	Source string   `json:"source,omitempty"`
	Match  string   `json:"match,omitempty"`
	Select Selector `json:"select"`
	Reason string   `json:"reason"`
	Ticket string   `json:"ticket,omitempty"`
	// Until is exclusive; a date means the end of that day in the client's
	// time zone.
	Until time.Time `json:"until"`
	Pos   Pos       `json:"pos"`
}

// Resume lifts an automatic halt: failures of the update recorded before
// After are forgiven. It names the update like an Exclusion does.
type Resume struct {
	Update string `json:"update,omitempty"`
	Source string `json:"source,omitempty"`
	Match  string `json:"match,omitempty"`
	// Ring, when set, limits the resume to one ring.
	Ring  string    `json:"ring,omitempty"`
	After time.Time `json:"after"`
	Pos   Pos       `json:"pos"`
}

// Emergency lets an update through windows (IgnoreWindows) and soaks
// (SkipSoak) until Until; through change freezes only with IgnoreFreezes;
// never through exclusions or halts.
type Emergency struct {
	// Update is an update id or name.
	Update        string    `json:"update"`
	Reason        string    `json:"reason"`
	Until         time.Time `json:"until"`
	SkipSoak      bool      `json:"skipSoak,omitempty"`
	IgnoreWindows bool      `json:"ignoreWindows,omitempty"`
	IgnoreFreezes bool      `json:"ignoreFreezes,omitempty"`
	Pos           Pos       `json:"pos"`
}

// Active reports whether the entry applies at now.
func (e *Emergency) Active(now time.Time) bool { return now.Before(e.Until) }

// Rollback asks the selected endpoints that have an update installed to
// remove it. Update is the update's id ("KB5099999",
// "openssl@3.0.15-1~deb12u1"); while the entry stands the update is not
// installed again on those endpoints.
type Rollback struct {
	Update string   `json:"update"`
	Select Selector `json:"select"`
	Reason string   `json:"reason"`
	Ticket string   `json:"ticket,omitempty"`
	Pos    Pos      `json:"pos"`
}

// DefaultStaleAfter is how long an endpoint may go unseen when its client's
// policy sets no staleAfter.
const DefaultStaleAfter = 7 * 24 * time.Hour

// EffectiveStaleAfter is how long an endpoint of c may go unseen before it
// counts as stale: c's staleAfter, or DefaultStaleAfter when c is nil (an
// unknown client) or sets none.
func (c *Client) EffectiveStaleAfter() time.Duration {
	if c == nil || c.StaleAfter <= 0 {
		return DefaultStaleAfter
	}
	return c.StaleAfter
}
