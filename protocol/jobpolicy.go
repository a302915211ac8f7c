package protocol

// What a signed job asks of the agent besides installing updates: how to
// reboot afterwards and how people are warned, the reviewed scripts to run
// around the install, the processes that must not be running, and whether
// the job removes updates instead of installing them. These travel inside
// JobPayload and are covered by its signature. Durations are Go duration
// text ("4h0m0s"), parsed with time.ParseDuration.

import "time"

// Reboot modes (RebootPolicy.Mode, and JobPayload.Reboot for agents that
// predate RebootPolicy).
const (
	// RebootNever: never reboot; a pending reboot is only reported.
	RebootNever = "never"
	// RebootIfRequired: reboot right after the job when it left a reboot
	// pending.
	RebootIfRequired = "if-required"
	// RebootForce: reboot at the deadline, with warnings before it, when a
	// reboot is pending.
	RebootForce = "force"
	// RebootAlways: as force, whether or not a reboot is pending.
	RebootAlways = "always"
	// RebootPrompt: ask the logged-in users; they may defer up to
	// Deferrals times by DeferFor each; at the deadline the endpoint
	// reboots whatever they do. Only when a reboot is pending.
	RebootPrompt = "prompt"
)

// RebootModes are the valid RebootPolicy.Mode values.
var RebootModes = []string{RebootNever, RebootIfRequired, RebootForce, RebootAlways, RebootPrompt}

// RebootPolicy says how the agent reboots after a job.
type RebootPolicy struct {
	Mode string `json:"mode"`
	// Deadline is how long after the job ends the endpoint reboots at the
	// latest (force, always, prompt).
	Deadline string `json:"deadline,omitempty"`
	// Deferrals is how many times a user may postpone a prompt, each by
	// DeferFor (prompt).
	Deferrals int    `json:"deferrals,omitempty"`
	DeferFor  string `json:"deferFor,omitempty"`
	// Warnings are how long before the reboot users are warned, longest
	// first, e.g. ["1h0m0s", "15m0s", "5m0s"] (force, always, prompt).
	Warnings []string `json:"warnings,omitempty"`
	// QuietHours, when set, are local times (in Timezone) in which no
	// prompt is shown: a prompt due then waits for their end. The deadline
	// reboot is not moved.
	QuietHours *QuietHours `json:"quietHours,omitempty"`
	// Timezone is the client's IANA time zone, for QuietHours.
	Timezone string `json:"timezone,omitempty"`
}

// QuietHours is a daily span of local time, "HH:MM" to "HH:MM"; End before
// Start spans midnight.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// RebootState is an endpoint's reboot situation, as the agent reports it.
type RebootState struct {
	// Mode is the reboot policy in force, empty when no reboot is planned.
	Mode string `json:"mode,omitempty"`
	// PendingSince is when the agent first saw a reboot pending.
	PendingSince time.Time `json:"pendingSince,omitzero"`
	// DeferralsUsed counts the users' deferrals of the planned reboot.
	DeferralsUsed int `json:"deferralsUsed,omitempty"`
	// ScheduledAt is when the agent will reboot the endpoint, zero for not
	// scheduled.
	ScheduledAt time.Time `json:"scheduledAt,omitzero"`
}

// Job actions (JobPayload.Action).
const (
	// ActionInstall installs the job's updates (the default, "").
	ActionInstall = ""
	// ActionRollback removes the job's updates: JobUpdate.Version is the
	// version to take away; the backend returns to the one before it.
	ActionRollback = "rollback"
)

// Script interpreters (Script.Shell).
const (
	ShellPowerShell = "powershell"
	ShellSh         = "sh"
)

// Script is a reviewed script from the fleet repo, carried whole in the
// signed job. The agent runs Content only when its SHA-256 is SHA256.
type Script struct {
	// Path is the script's path in the fleet repo, for messages.
	Path    string `json:"path"`
	Shell   string `json:"shell"`
	Content string `json:"content"`
	// SHA256 is the lower-case hex SHA-256 of Content.
	SHA256 string `json:"sha256"`
}

// JobHooks are the scripts run before and after a job's installs. A pre
// script that fails skips the installs.
type JobHooks struct {
	Pre  *Script `json:"pre,omitempty"`
	Post *Script `json:"post,omitempty"`
	// Timeout bounds each script.
	Timeout string `json:"timeout"`
}

// JobGuards keep a job from starting while a listed process runs.
type JobGuards struct {
	// Processes are executable names ("ehr.exe", "Zoom"), compared without
	// case.
	Processes []string `json:"processes"`
	// Wait is how long the agent waits for them to end before it reports
	// ResultDeferredByGuard.
	Wait string `json:"wait"`
}

// HookResult is what a job's pre or post script did.
type HookResult struct {
	// Hook is "pre" or "post".
	Hook     string `json:"hook"`
	Path     string `json:"path"`
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
	// Output is the script's output, bounded by the agent.
	Output string `json:"output,omitempty"`
}
