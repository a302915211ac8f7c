package protocol

// The reported state of a fleet: endpoints, the updates they report as
// available or installed, and the attempts made to install them. It is the
// shared vocabulary of the planner, the store, the agent API and the JSON
// state snapshot that `patchctl plan --state` reads and the controller
// exports.

import (
	"time"
)

// SnapshotAPIVersion is the value of Snapshot.APIVersion this package reads and
// writes.
const SnapshotAPIVersion = "patchline.dev/state/v1"

// Snapshot is the reported state of a fleet at one moment.
type Snapshot struct {
	APIVersion  string      `json:"apiVersion"`
	GeneratedAt time.Time   `json:"generatedAt"`
	Endpoints   []*Endpoint `json:"endpoints"`
}

// OS identifies an endpoint's operating system.
type OS struct {
	// Family is windows, linux or macos.
	Family  string `json:"family"`
	Version string `json:"version,omitempty"`
}

// Endpoint is a device with an agent, as it last reported.
type Endpoint struct {
	ID            string            `json:"id"`
	Client        string            `json:"client"`
	Hostname      string            `json:"hostname"`
	OS            OS                `json:"os"`
	Labels        map[string]string `json:"labels,omitempty"`
	LastSeen      time.Time         `json:"lastSeen"`
	RebootPending bool              `json:"rebootPending"`
	// Reboot is the reboot state the agent last reported, nil if none.
	Reboot  *RebootState `json:"reboot,omitempty"`
	Updates []*Update    `json:"updates"`
	// AgentVersion is the version of the endpoint's agent, empty when the
	// agent did not say.
	AgentVersion string `json:"agentVersion,omitempty"`
}

// Update is one installable thing an endpoint reports: a Windows KB, a
// Debian package version, a winget/choco/brew app version.
//
// For package sources ID is "name@version", Name the package or app id and
// Version the candidate version; InstalledVersion says what is there now.
type Update struct {
	ID               string    `json:"id"`
	Source           string    `json:"source"`
	Name             string    `json:"name"`
	Title            string    `json:"title,omitempty"`
	Version          string    `json:"version"`
	InstalledVersion string    `json:"installedVersion,omitempty"`
	Category         string    `json:"category"`
	Severity         string    `json:"severity,omitempty"`
	CVSS             float64   `json:"cvss,omitempty"`
	CVEs             []string  `json:"cves,omitempty"`
	KnownExploited   bool      `json:"knownExploited"`
	Released         time.Time `json:"released"`
	// ReleasedFrom says where Released came from: ReleasedByVendor (the
	// endpoint's own tool gave it) or ReleasedFirstSeen (the source gives
	// none; the controller uses the moment the fleet first saw the
	// update). An agent leaves it empty; the controller fills it in.
	ReleasedFrom string `json:"releasedFrom,omitempty"`
	// SourcePackage is the Debian source package an apt update is built
	// from: the Debian Security Tracker is keyed by it.
	SourcePackage string `json:"sourcePackage,omitempty"`
	// Urgency is the highest Debian upload urgency of the changelog entries
	// between the installed and the candidate version (one of Urgencies).
	Urgency        string     `json:"urgency,omitempty"`
	RebootRequired bool       `json:"rebootRequired"`
	Requires       []string   `json:"requires,omitempty"`
	Installed      bool       `json:"installed"`
	InstalledAt    *time.Time `json:"installedAt"`
	Attempts       []Attempt  `json:"attempts,omitempty"`
	// InFlightJob is the id of an open job that includes this update.
	InFlightJob *string `json:"inFlightJob"`
	// Intel is what the controller learned of the update from public
	// feeds; nil when no feed applies. An agent never sends it.
	Intel *Intel `json:"intel,omitempty"`
}

// Where an update's release time came from (Update.ReleasedFrom).
const (
	ReleasedByVendor  = "vendor"
	ReleasedFirstSeen = "first-seen"
)

// ReleasedAt is when u counts as released at now: its release time, or now
// itself when that is not known (an offline snapshot of an update whose
// source gives no date). An unknown time never counts as long ago.
func (u *Update) ReleasedAt(now time.Time) time.Time {
	if u.Released.IsZero() {
		return now
	}
	return u.Released
}

// Result of one install attempt.
type Result string

// Attempt results.
const (
	ResultSucceeded Result = "succeeded"
	ResultFailed    Result = "failed"
	// ResultRefused: the agent refused the job (bad signature, expired,
	// foreign); it counts as neither success nor failure of the update.
	ResultRefused Result = "refused"
	// ResultUnknown: the agent stopped while the job was installing (a
	// kill, a crash, a power cut), so it cannot tell what happened to the
	// update. The inventory the agent reports after the restart tells:
	// installed is installed; still missing is retried in the same window
	// without counting as a failure, unless the update was interrupted
	// before, when this one counts as a failure. Controllers older than
	// this value refuse it; the agent then sends "failed" instead.
	ResultUnknown Result = "unknown"
	// ResultDeferredByGuard: a guarded process kept running through the
	// guard's wait, so the agent did not start the job; not a failure,
	// retried in the next window.
	ResultDeferredByGuard Result = "deferred-by-guard"
	// ResultHookFailed: the job's pre script failed, so the update was not
	// installed; a failure of its own kind.
	ResultHookFailed Result = "hook-failed"
)

// Attempt is one try to install an update on an endpoint.
type Attempt struct {
	At     time.Time `json:"at"`
	Result Result    `json:"result"`
	Error  string    `json:"error,omitempty"`
	// Job is the id of the job the attempt belonged to.
	Job string `json:"job,omitempty"`
	// Ring is the ring the endpoint was in when the job was planned.
	Ring string `json:"ring,omitempty"`
	// Action is the job's action: ActionInstall ("") or ActionRollback.
	Action string `json:"action,omitempty"`
}
