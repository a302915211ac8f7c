package protocol

import "time"

// Status is what GET /v1/status answers and `patchctl status` shows.
type Status struct {
	// Replica is the name of the patchd that answered (--replica-name).
	Replica string `json:"replica,omitempty"`
	// Version is the answering patchd's version (internal/buildinfo), as
	// `patchd version` prints it.
	Version string `json:"version,omitempty"`
	// Leader is the name of the replica that leads: follows the fleet
	// repo and plans every client. Every other replica on the database
	// serves the APIs only. It is "" while no replica holds the lease (the
	// last leader stopped, another is taking over). With the embedded
	// store it is Replica.
	Leader string `json:"leader,omitempty"`
	// Head is the last branch head the controller applied or refused.
	Head string `json:"head"`
	// SourceError is the last failure to fetch or read the fleet repo.
	SourceError string `json:"sourceError,omitempty"`
	// Refused is the most recent refused revision.
	Refused *Refusal `json:"refused,omitempty"`
	// Pending is the branch head the controller could not apply yet for
	// a reason that is not a verdict on it (the store could not record
	// it, the repository could not be read): it keeps running the last
	// applied revision and tries the head again with a backoff.
	Pending *PendingRevision `json:"pending,omitempty"`
	// Store is the health of the controller's store.
	Store StoreHealth `json:"store"`
	// Revisions are the last applied and attempted revision per client.
	Revisions []RevisionStatus `json:"revisions"`
	// Clients are each client's figures from its last re-plan.
	Clients []ClientStatus `json:"clients"`
}

// PendingRevision is a head waiting to be applied.
type PendingRevision struct {
	Revision string `json:"revision"`
	// Error says why the last attempt failed ("could not record: ...").
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	// Attempts counts the attempts so far; NextAttempt is when the next
	// one starts, unless a new head comes first.
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"nextAttempt"`
}

// StoreHealth says whether the controller's store takes writes.
type StoreHealth struct {
	// Failing is true while the last write to the store failed and none
	// has succeeded since (GET /readyz answers 503 meanwhile).
	Failing bool `json:"failing"`
	// FailingSince is the first failure of the current run of failures.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// LastError is the most recent failed write, kept after the store
	// recovers; LastErrorOp names what the write was (enroll, report,
	// result, jobs, lease, revision, audit).
	LastError   string    `json:"lastError,omitempty"`
	LastErrorOp string    `json:"lastErrorOp,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	// RecoveredAt is when a write first succeeded after the last failure.
	RecoveredAt time.Time `json:"recoveredAt,omitzero"`
}

// Refusal is a revision the controller would not apply.
type Refusal struct {
	Revision string `json:"revision"`
	// Client is "" when the whole commit was refused.
	Client   string    `json:"client,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Problems []string  `json:"problems"`
	At       time.Time `json:"at"`
}

// RevisionStatus is the last applied and last attempted revision of one
// client ("" for the branch as a whole).
type RevisionStatus struct {
	Client        string    `json:"client"`
	Applied       string    `json:"applied,omitempty"`
	AppliedAt     time.Time `json:"appliedAt,omitzero"`
	Attempted     string    `json:"attempted"`
	AttemptStatus string    `json:"attemptStatus"`
}

// ClientStatus sums up one client.
type ClientStatus struct {
	Client   string `json:"client"`
	Revision string `json:"revision,omitempty"`
	// Known is false when the fleet repo has no such client.
	Known      bool    `json:"known"`
	Endpoints  int     `json:"endpoints"`
	Compliant  int     `json:"compliant"`
	Drifting   int     `json:"drifting"`
	Stale      int     `json:"stale"`
	Compliance float64 `json:"compliance"`
	// Missing counts desired updates not yet installed (pairs).
	Missing int `json:"missing"`
	// Unavailable counts requirements an endpoint does not meet and no
	// update it reports can meet (pairs); they are part of Missing.
	Unavailable int `json:"unavailable"`
	// Halted lists rollouts stopped by failures.
	Halted    []Halt    `json:"halted,omitempty"`
	PlannedAt time.Time `json:"plannedAt"`
	// Error is why the client's last re-plan failed (the store could not
	// be read or written, a job could not be signed); it is tried again
	// after a backoff, and the figures above are from the last re-plan
	// that succeeded. Empty when the last re-plan succeeded.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"errorAt,omitzero"`
	// Refused, when set, are the problems that stopped the controller
	// from evaluating again, when it started, the revision the client last
	// applied (a time or memory limit exceeded, an error). The client is
	// planned no more, and gets no new job, until a commit loads it; the
	// figures above are zero.
	Refused []string `json:"refused,omitempty"`
}

// Halt is one halted rollout.
type Halt struct {
	Update string `json:"update"`
	Ring   string `json:"ring"`
	Reason string `json:"reason"`
}
