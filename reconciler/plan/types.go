package plan

import (
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/schema"
)

// Decision is what the planner decided for one (endpoint, update) pair.
type Decision string

// Decisions, in the order summaries list them.
const (
	Installed Decision = "installed"
	Missing   Decision = "missing" // drift: desired, eligible, in window; goes into a job
	// Rollback: installed, and a rollback entry asks to remove it; it
	// goes into a rollback job (protocol.ActionRollback).
	Rollback Decision = "rollback"
	// Unavailable: drift that no job can fix: a requirement asks for a
	// version above what the endpoint has installed and no update the
	// endpoint reports is recent enough.
	Unavailable   Decision = "unavailable"
	InProgress    Decision = "in-progress"
	Failed        Decision = "failed"
	Halted        Decision = "halted"
	WaitingRing   Decision = "waiting-ring"
	WaitingWindow Decision = "waiting-window"
	Excluded      Decision = "excluded"
	NotApproved   Decision = "not-approved"
	UnknownClient Decision = "unknown-client"
)

// AllDecisions lists every decision in summary order.
var AllDecisions = []Decision{Installed, Missing, Rollback, Unavailable, InProgress, Failed, Halted, WaitingRing, WaitingWindow, Excluded, NotApproved, UnknownClient}

// Drift reports whether d makes its endpoint drifting: a desired update
// that is not installed and not excluded, whatever holds it back (a ring,
// a window, a halt, a failure, a job in flight).
func (d Decision) Drift() bool {
	switch d {
	case Missing, Rollback, Unavailable, InProgress, Failed, Halted, WaitingRing, WaitingWindow:
		return true
	}
	return false
}

// PairDecision is the decision for one (endpoint, update) pair and what
// produced it.
type PairDecision struct {
	Endpoint string `json:"endpoint"`
	Client   string `json:"client"`
	Ring     string `json:"ring,omitempty"`
	Update   string `json:"update"`
	Source   string `json:"source"`
	// Severity is the update's effective severity, the one approve rules
	// and SLAs weigh (protocol.Update.EffectiveSeverity).
	Severity string   `json:"severity,omitempty"`
	Decision Decision `json:"decision"`
	// Rule is the path:line of the rule that produced the decision (the
	// approve rule, requirement, exclusion, freeze, ring or window), or ""
	// when none did (not-approved, unknown-client).
	Rule string `json:"rule,omitempty"`
	// Reason says in words why, for people: "exclusion: breaks the EHR
	// vendor app (PSA-1234) until 2026-12-31", "ring pilot waits for canary".
	Reason string `json:"reason,omitempty"`
	// EligibleAt is when the pair can next move forward (ring soak ends,
	// window opens), when known.
	EligibleAt *time.Time `json:"eligibleAt,omitempty"`
}

// Job is a batch of updates for one endpoint.
type Job struct {
	Endpoint string `json:"endpoint"`
	Client   string `json:"client"`
	Ring     string `json:"ring"`
	// Updates are update ids ordered so each update's requires come first.
	Updates []string `json:"updates"`
	// NotAfter is the end of the window occurrence the job was planned in;
	// an agent must not start the job later.
	NotAfter time.Time           `json:"notAfter"`
	Reboot   schema.RebootPolicy `json:"reboot"`
	// RebootDeadline is the ring's reboot deadline as a Go duration
	// ("4h0m0s"), set when the ring has one.
	RebootDeadline string `json:"rebootDeadline,omitempty"`
	// RebootPolicy is the ring's reboot policy in full, with the client's
	// time zone for its quiet hours.
	RebootPolicy *protocol.RebootPolicy `json:"rebootPolicy,omitempty"`
	// Action is protocol.ActionInstall ("") or protocol.ActionRollback.
	Action string `json:"action,omitempty"`
	// Hooks are the ring's reviewed scripts, content and SHA-256
	// included; Guards its guarded processes. Nil for none.
	Hooks  *protocol.JobHooks  `json:"hooks,omitempty"`
	Guards *protocol.JobGuards `json:"guards,omitempty"`
	// Emergency names the emergency entries that let the job's updates
	// through a window, a freeze or a soak: "KB5099999: reason (rule)".
	Emergency string `json:"emergency,omitempty"`
	Revision  string `json:"revision"`
	// IdempotencyKey is the same for the same (endpoint, updates, revision)
	// within one window occurrence; a retry in a later window gets a new one.
	IdempotencyKey string `json:"idempotencyKey"`
}

// Result is the output of Plan.
type Result struct {
	Revision string    `json:"revision"`
	Now      time.Time `json:"now"`
	// Summary counts decisions; every decision in AllDecisions is present.
	Summary map[Decision]int `json:"summary"`
	// Jobs are sorted by client, ring order, then endpoint id.
	Jobs []Job `json:"jobs"`
	// Rollouts hold the progress of every desired update through every ring
	// of each client that has it, sorted by client, update id, ring order.
	Rollouts []Rollout `json:"rollouts"`
	// Decisions, sorted by endpoint id then update id, are only filled when
	// Options.Decisions is set.
	Decisions []PairDecision `json:"decisions,omitempty"`
	// Modes are the modes of the planned clients (those with endpoints in
	// the snapshot), sorted by client: a client in report mode gets
	// decisions but no job.
	Modes []ClientMode `json:"modes"`
	// Emergencies are the emergency entries of the planned clients,
	// sorted by client then position, expired ones included (Active
	// false): what `patchctl plan` shows first.
	Emergencies []EmergencyEntry `json:"emergencies,omitempty"`
}

// EmergencyEntry is one emergency entry of a planned client.
type EmergencyEntry struct {
	Client        string    `json:"client"`
	Update        string    `json:"update"`
	Reason        string    `json:"reason"`
	Until         time.Time `json:"until"`
	SkipSoak      bool      `json:"skipSoak,omitempty"`
	IgnoreWindows bool      `json:"ignoreWindows,omitempty"`
	IgnoreFreezes bool      `json:"ignoreFreezes,omitempty"`
	// Active is false once Until has passed: the entry lets nothing
	// through.
	Active bool   `json:"active"`
	Rule   string `json:"rule"`
}

// ClientMode is the mode a planned client is in.
type ClientMode struct {
	Client string      `json:"client"`
	Mode   schema.Mode `json:"mode"`
	// Rule is the path:line that sets the mode, "" when no file does
	// (the default, enforce).
	Rule string `json:"rule,omitempty"`
}

// Options tune what Plan returns.
type Options struct {
	// Decisions asks for every (endpoint, update) pair in Result.Decisions;
	// without it only the summary, jobs and rollouts are built.
	Decisions bool
	// AgentReleases, when set, says whether the controller can offer an
	// agent version (nil error) or why not; an agent update it refuses is
	// unavailable. Unset (patchctl plan), every version counts as offered.
	AgentReleases func(version string) error
}

// RolloutState is where one update stands in one ring of one client.
type RolloutState string

// Rollout states.
const (
	// RolloutWaiting: the ring may not start yet (an earlier ring has not
	// passed, or is soaking).
	RolloutWaiting RolloutState = "waiting"
	// RolloutInProgress: the ring has started and not yet passed.
	RolloutInProgress RolloutState = "in-progress"
	// RolloutPassed: the ring's success share reached its minSuccess.
	RolloutPassed RolloutState = "passed"
	// RolloutHalted: this ring or an earlier one failed too often.
	RolloutHalted RolloutState = "halted"
)

// Rollout is the progress of one desired update through one ring of one
// client.
type Rollout struct {
	Client string `json:"client"`
	Update string `json:"update"`
	Ring   string `json:"ring"`
	// Counted are the ring's endpoints that have the update, not excluded
	// from it and not stale.
	Counted   int `json:"counted"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// Share is Succeeded/Counted (0 for an empty ring); FailureShare is
	// Failed/Counted.
	Share        float64      `json:"share"`
	FailureShare float64      `json:"failureShare"`
	State        RolloutState `json:"state"`
	// EligibleAt is when the ring may start (the update became desired for
	// the first ring; the earlier ring passed plus its soak for the others),
	// when known.
	EligibleAt *time.Time `json:"eligibleAt,omitempty"`
	// PassedAt is when the success share reached minSuccess.
	PassedAt *time.Time `json:"passedAt,omitempty"`
	// Rule is the ring's path:line.
	Rule string `json:"rule"`
	// Reason says in words why the ring is halted or waiting.
	Reason string `json:"reason,omitempty"`
}

// Explanation is the chain of facts behind one (endpoint, update) decision,
// as `patchctl why` shows it. It is built by the same code as Plan.
type Explanation struct {
	Endpoint string    `json:"endpoint"`
	Client   string    `json:"client"`
	Update   string    `json:"update"`
	Revision string    `json:"revision"`
	Now      time.Time `json:"now"`
	// KnownClient is false when the fleet has no such client.
	KnownClient bool `json:"knownClient"`
	// Stale is true when the endpoint has not been seen for longer than the
	// client's staleAfter; it then does not count towards ring progress.
	Stale bool `json:"stale"`
	// Ring is the first ring whose select matches the endpoint, if any.
	Ring *Citation `json:"ring,omitempty"`
	// Desire is the requirement or approve rule that makes the update
	// desired, or the approve rule that will once its minAge has passed
	// (then At is that time); nil when nothing asks for the update.
	Desire  *Citation `json:"desire,omitempty"`
	Desired bool      `json:"desired"`
	// Evidence is what the update's data were when approve rules weighed
	// them, each with where it came from; nil when no rule weighed any (a
	// requirement names the update, or the rules weighed match by source,
	// category and name alone).
	Evidence *Evidence `json:"evidence,omitempty"`
	// Exclusion is the exclusion holding the update on this endpoint.
	Exclusion *Citation `json:"exclusion,omitempty"`
	// Rollouts is the update's progress through every ring of the client.
	Rollouts []Rollout `json:"rollouts,omitempty"`
	// Freeze is the change freeze covering the endpoint now.
	Freeze *Citation `json:"freeze,omitempty"`
	// Resume is the resume entry that forgives failures this decision
	// would otherwise be held back by (a halt of the endpoint's ring or an
	// earlier one, or the endpoint's own failed attempts); when none does,
	// the first entry naming the update, which then changes nothing here.
	Resume *Citation `json:"resume,omitempty"`
	// Mode cites the client's mode when it is report: decisions are made,
	// no job is sent.
	Mode *Citation `json:"mode,omitempty"`
	// Rollback cites the rollback entry that selects the endpoint for the
	// update; Rollouts are then the rollback's progress through the rings.
	Rollback *Citation `json:"rollback,omitempty"`
	// Emergency cites the active emergency entry naming the update, and
	// what it lets the update through.
	Emergency *Citation `json:"emergency,omitempty"`
	// Reboot is the endpoint's reboot state as its agent last reported
	// it, in the client's time zone, with the ring's reboot policy; nil
	// when no reboot is pending or planned.
	Reboot *Citation `json:"reboot,omitempty"`
	// Window is the maintenance window of the endpoint's ring.
	Window *WindowState `json:"window,omitempty"`
	// FailedAttempts counts failed install attempts not forgiven by a
	// resume entry.
	FailedAttempts int `json:"failedAttempts"`
	// Interruptions counts install attempts whose outcome is unknown (the
	// agent stopped while installing) not forgiven by a resume entry; the
	// first is not a failure, each later one is one of FailedAttempts.
	Interruptions int `json:"interruptions,omitempty"`
	// Decision is the final decision, as Plan makes it.
	Decision PairDecision `json:"decision"`
}

// Evidence holds the facts about an update that the approve rules Explain
// weighed: one for each kind of data field they set (knownExploited, cve,
// minCVSS, minEPSS, minSeverity, and minAge or releasedBefore for the
// release), nil for the others. Each says where its value came from, as
// DESIGN.md's provenance principle asks: the endpoint's own report, a
// public feed with its fetch time, or the fleet's first sighting.
type Evidence struct {
	KnownExploited *ExploitedEvidence `json:"knownExploited,omitempty"`
	CVEs           *CVEEvidence       `json:"cves,omitempty"`
	CVSS           *ScoreEvidence     `json:"cvss,omitempty"`
	EPSS           *ScoreEvidence     `json:"epss,omitempty"`
	Severity       *SeverityEvidence  `json:"severity,omitempty"`
	Released       *ReleaseEvidence   `json:"released,omitempty"`
}

// SourceEndpoint is Provenance.Source for a value the endpoint's own tool
// reported.
const SourceEndpoint = "endpoint"

// Provenance says where a value came from: Source is SourceEndpoint or
// the feed that gave it (protocol.FeedKEV, FeedNVD, FeedEPSS,
// FeedDebian), with FetchedAt, when the controller fetched that feed, if
// it says. An empty Source means nothing gave the value.
type Provenance struct {
	Source    string     `json:"source,omitempty"`
	FetchedAt *time.Time `json:"fetchedAt,omitempty"`
}

// ExploitedEvidence is whether the update is known exploited. With Source
// protocol.FeedKEV, CISA's catalog decided: Listings are the update's CVEs
// it lists (none: not known exploited); Reported is what the endpoint
// said, which the catalog overrules.
type ExploitedEvidence struct {
	Value    bool                  `json:"value"`
	Listings []protocol.KEVListing `json:"listings,omitempty"`
	Reported bool                  `json:"reported"`
	Provenance
}

// CVEEvidence is the CVEs the update fixes: those its endpoint reported,
// and those a feed added (Added, with AddedBy).
type CVEEvidence struct {
	Reported []string    `json:"reported,omitempty"`
	Added    []string    `json:"added,omitempty"`
	AddedBy  *Provenance `json:"addedBy,omitempty"`
}

// ScoreEvidence is a CVSS score or an EPSS probability, 0 when nothing
// gave one, with the CVE it belongs to and, for CVSS, its version, when a
// feed gave it.
type ScoreEvidence struct {
	Value   float64 `json:"value"`
	CVE     string  `json:"cve,omitempty"`
	Version string  `json:"version,omitempty"`
	Provenance
}

// SeverityEvidence is the update's effective severity and where it came
// from: From is SeverityFromVendor (the vendor's rating, as the endpoint
// reported it) or SeverityFromCVSS (derived from CVSS, the score in
// CVSS); "" when the update has no severity.
type SeverityEvidence struct {
	Severity string  `json:"severity,omitempty"`
	From     string  `json:"from,omitempty"`
	CVSS     float64 `json:"cvss,omitempty"`
}

// Where an effective severity came from (SeverityEvidence.From, and
// protocol.Intel.SeverityFrom).
const (
	SeverityFromVendor = "vendor"
	SeverityFromCVSS   = "cvss"
)

// ReleaseEvidence is when the update was released and who says so: From
// is protocol.ReleasedByVendor, protocol.ReleasedFirstSeen, or "" when
// the snapshot does not say. At is nil when the time is not known; the
// planner then counts the update as released at the planning time.
type ReleaseEvidence struct {
	At   *time.Time `json:"at,omitempty"`
	From string     `json:"from,omitempty"`
}

// Citation names a policy entry that took part in a decision.
type Citation struct {
	// Kind is ring, require, requires, approve, exclusion, freeze, resume
	// or mode.
	Kind string `json:"kind"`
	// Name is the entry's name or, for entries without one, what it names.
	Name string `json:"name,omitempty"`
	// Rule is the entry's path:line.
	Rule string `json:"rule"`
	// Detail says in words what the entry did.
	Detail string `json:"detail,omitempty"`
	// At is a time the entry names: when an approval takes effect, when an
	// exclusion or freeze ends.
	At *time.Time `json:"at,omitempty"`
}

// WindowState is a maintenance window as seen at the planning time.
type WindowState struct {
	Name string `json:"name"`
	Rule string `json:"rule"`
	Open bool   `json:"open"`
	// Closes is the end of the open occurrence, when Open.
	Closes *time.Time `json:"closes,omitempty"`
	// NextOpen is the start of the next occurrence.
	NextOpen *time.Time `json:"nextOpen,omitempty"`
}
