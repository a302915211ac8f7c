// Package store defines what the controller keeps between restarts and the
// records it keeps them in: enrolled endpoints and their last inventory
// report, jobs and the attempts their results recorded, the policy revisions
// the controller applied or refused, and an append-only audit log.
//
// There is no Store interface here: each user of a store declares the
// methods it calls, next to the code that calls them (the API in package
// api, the controller in package reconciler), and store/sqlite (the
// embedded default) satisfies both. Every implementation keeps these
// invariants:
//
//   - A write is one transaction: a crash at any point leaves either all of
//     it or none of it. In particular all jobs of one client's re-plan are
//     created together, with their idempotency keys, sequence numbers,
//     signatures and audit entries.
//   - A job's sequence number is per endpoint and only grows, across
//     restarts and even when older jobs are gone: the controller numbers
//     and signs a job before it is stored, and the store refuses (with
//     ErrConflict) a job whose number is not above every number the
//     endpoint has seen.
//   - A job result is recorded once; a repeated copy (the agent's outbox
//     retrying) is accepted and ignored.
//   - The audit log is append-only; entry ids only grow.
//   - An endpoint's job sequence moves only with jobs: those the
//     controller creates, and the refusal of an open job it gave the
//     endpoint. The first report after the endpoint enrolled, or after the
//     store was restored from a backup (the jobs created since the backup
//     are unknown), may raise it too; any other report's word on it is
//     ignored.
//   - A revoked endpoint gets no new job, and its open jobs expire when it
//     is revoked; deleting an endpoint removes its inventory, jobs and
//     results but never its audit entries.
//   - A token's secret is never stored, only its SHA-256; a token name is
//     never reused, and a revoked token stays revoked. The same holds for
//     enrollment tokens, whose use is counted in the transaction that
//     enrolls the endpoint: a token is never used past its expiry, its
//     revocation or its last use.
//
// Errors wrap ErrNotFound, ErrConflict or ErrInvalid where a caller branches
// on the kind (the API maps them to 404, 409 and 400).
package store

import (
	"errors"
	"time"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

// Error kinds callers branch on. Store errors wrap one of these with context.
var (
	// ErrNotFound: no such endpoint, job or revision, or the job belongs to
	// another endpoint (an endpoint may only see and answer its own jobs).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write contradicts what is stored (endpoint already
	// enrolled, report older than the stored one, job already finished).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed (missing id, result for an update
	// the job does not contain).
	ErrInvalid = errors.New("invalid")
)

// Enrollment is an endpoint's identity: what it enrolled with.
type Enrollment struct {
	ID     string
	Client string
	// Hostname is the host name it enrolled with, then the one it last
	// reported.
	Hostname string
	// NodeKeyHash is the hash of the endpoint's node key; the key itself is
	// never stored.
	NodeKeyHash []byte
	EnrolledAt  time.Time
	// RevokedAt is when the endpoint was revoked (zero while it is not),
	// by RevokedBy (a token's name). A revoked endpoint's node key is
	// refused, it gets no job, and it is in no snapshot; its records stay
	// until it is deleted.
	RevokedAt time.Time
	RevokedBy string
	// Labels are the endpoint's enrollment labels: those of the
	// enrollment token it enrolled with. The API merges them into every
	// report's labels, over the agent's own.
	Labels map[string]string
	// Token is the id of the enrollment token the endpoint enrolled with;
	// 0 for the client's static secret. Enroll uses the token in the same
	// transaction (see EnrollToken.Refusal).
	Token int64
}

// EndpointRecord is an enrolled endpoint as the endpoint list shows it.
type EndpointRecord struct {
	Enrollment
	// LastSeen is when its last report arrived (zero when none did).
	LastSeen time.Time
}

// Token is an admin API token as stored: its secret is never stored, only
// the secret's SHA-256.
type Token struct {
	// Name is the token's unique name (protocol.CheckTokenName).
	Name string
	// Hash is the SHA-256 of the token's secret.
	Hash []byte
	// Scopes are the token's rights (protocol.Scopes).
	Scopes []protocol.Scope
	// Clients limits the token to these clients; empty means every
	// client.
	Clients   []string
	CreatedAt time.Time
	CreatedBy string
	// LastUsed is when the token was last accepted, to the minute.
	LastUsed time.Time
	// RevokedAt is zero while the token works.
	RevokedAt time.Time
	RevokedBy string
}

// EnrollToken is an enrollment token made at runtime (`patchctl enroll
// create`): it enrolls endpoints of one client, with labels they inherit,
// until it expires, is used up or is revoked. Its secret is never stored,
// only the secret's SHA-256.
type EnrollToken struct {
	// ID is assigned by the store; it only grows.
	ID int64
	// Name is unique among enrollment tokens, revoked ones too
	// (protocol.CheckEnrollTokenName).
	Name   string
	Client string
	Hash   []byte
	// Labels are given to every endpoint enrolled with the token.
	Labels map[string]string
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time
	// MaxUses is 0 for a token without a limit; Uses counts the
	// endpoints enrolled with it.
	MaxUses   int64
	Uses      int64
	CreatedAt time.Time
	CreatedBy string
	RevokedAt time.Time
	RevokedBy string
}

// TokenRefusal says why an enrollment token cannot enroll an endpoint.
// Store errors wrap it; callers find it with errors.As.
type TokenRefusal string

// Why an enrollment token is refused.
const (
	TokenRevoked     TokenRefusal = "revoked"
	TokenExpired     TokenRefusal = "expired"
	TokenUsedUp      TokenRefusal = "used up"
	TokenOtherClient TokenRefusal = "of another client"
)

func (r TokenRefusal) Error() string { return "enrollment token " + string(r) }

// Refusal says why t cannot enroll an endpoint of client at at, or ""
// when it can. The API asks it before enrolling, and the store again in
// the transaction that uses the token.
func (t EnrollToken) Refusal(client string, at time.Time) TokenRefusal {
	switch {
	case t.Client != client:
		return TokenOtherClient
	case !t.RevokedAt.IsZero():
		return TokenRevoked
	case !t.ExpiresAt.IsZero() && !at.Before(t.ExpiresAt):
		return TokenExpired
	case t.MaxUses > 0 && t.Uses >= t.MaxUses:
		return TokenUsedUp
	}
	return ""
}

// Report is one endpoint's full inventory report. It replaces the previous
// report: updates it does not list are no longer reported.
type Report struct {
	Endpoint      string
	Hostname      string
	OS            protocol.OS
	Labels        map[string]string
	RebootPending bool
	// Reboot is the agent's reboot state, nil when it reported none.
	Reboot *protocol.RebootState
	// Updates are stored as reported, except that the store keeps its own
	// InstalledAt, Attempts and InFlightJob: whatever the agent put there is
	// ignored.
	Updates []*protocol.Update
	// At is when the controller received the report; it becomes the
	// endpoint's LastSeen.
	At time.Time
	// Seq is the agent's number for the report; it grows with every report
	// of the endpoint. A report below the stored one's is refused.
	Seq int64
	// JobSeq is the highest job sequence number the agent has seen. The
	// first report after the endpoint enrolled, or after the store was
	// restored from a backup (which may be older than the agent's last
	// job), numbers the endpoint's next job above it; any other report's
	// JobSeq is ignored, so an endpoint cannot move its own numbers.
	JobSeq int64
	// AgentVersion is the version of the endpoint's agent ("" when it did
	// not say): the snapshot's Endpoint.AgentVersion. The snapshot also
	// holds the endpoint's agent updates (protocol.AgentUpdateID) that
	// have attempts or an open job (FindUpdate).
	AgentVersion string
}

// JobState is where a job is in its life.
type JobState string

// Job states. A job starts open, is leased when handed to its agent (and
// offered again when the lease ends without a result), and ends done (a
// result arrived) or expired (its not-after time passed first).
const (
	JobOpen    JobState = "open"
	JobLeased  JobState = "leased"
	JobDone    JobState = "done"
	JobExpired JobState = "expired"
)

// Job is a planned job as stored: the planner's job plus its identity,
// sequence number, signature and lifecycle.
type Job struct {
	plan.Job
	// ID names the job; the controller assigns it before signing.
	ID string
	// Seq is the job's sequence number on its endpoint, assigned by the
	// controller before signing (see LastJobSeqs); it only grows.
	Seq int64
	// Payload is the canonical bytes the controller signed and the agent
	// verifies; Signature is the signature over them.
	Payload   []byte
	Signature []byte
	State     JobState
	// LeaseUntil is when the current lease ends (zero when never leased).
	LeaseUntil time.Time
	CreatedAt  time.Time
}

// Recorded is what RecordResult answers.
type Recorded struct {
	// Duplicate is true for a repeated copy of a result already recorded
	// (nothing changed).
	Duplicate bool
	// Ring is the job's ring.
	Ring string
}

// UpdateResult is the outcome of one update of a job, as the agent reports it.
type UpdateResult struct {
	Update string
	Result protocol.Result
	Error  string
	// Output is the backend's output, kept for troubleshooting.
	Output string
	// At is when the agent finished the update; zero means when the result
	// was recorded. An unknown result is dated by the controller instead
	// (see InventorySeq).
	At time.Time
	// InventorySeq, for a protocol.ResultUnknown result, is the agent's
	// number of the inventory report it sent after the interruption
	// (protocol.ResultRequest.InventorySeq). When the endpoint's stored
	// report is that one or a later one, the attempt is dated at that
	// report's time, which the planner reads as "the inventory has
	// verified it"; otherwise at the time the result is recorded, to be
	// verified by the next report.
	InventorySeq int64
}

// Revision statuses.
const (
	RevisionApplied = "applied"
	RevisionRefused = "refused"
)

// Revision is a policy revision the controller applied or refused.
type Revision struct {
	// Hash is the commit hash.
	Hash string
	// Status is RevisionApplied or RevisionRefused.
	Status string
	At     time.Time
	// Problems say why a revision was refused.
	Problems []string
	// Reason is the kind of a refusal ("invalid", "verify"); empty for
	// an applied revision.
	Reason string
	// Client is the client the revision was applied to or refused for; ""
	// means the whole fleet.
	Client string
}

// RevisionStatus is what /v1/status shows about policy revisions.
type RevisionStatus struct {
	// Clients has one entry per client with a recorded revision, sorted by
	// client ("" for the whole fleet comes first).
	Clients []ClientRevisions
	// Refused are the most recently refused revisions, newest first.
	Refused []Revision
}

// ClientRevisions is the last applied and last attempted revision of one
// client ("" for the whole fleet).
type ClientRevisions struct {
	Client string
	// LastApplied is nil when no revision was ever applied.
	LastApplied *Revision
	// LastAttempted is the most recent revision recorded, applied or
	// refused. When it differs from LastApplied the controller is running
	// LastApplied and refusing the newer one.
	LastAttempted Revision
}
