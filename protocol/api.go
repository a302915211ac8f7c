package protocol

// The agent API: what patch-agent sends to patchd and what it gets back,
// the signed job encoding, and the error envelope whose codes both sides
// map to and from HTTP status codes.

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Routes of the agent API.
const (
	PathEnroll = "/v1/enroll"
	PathReport = "/v1/report"
	PathJobs   = "/v1/jobs"
	// PathResult is the route pattern for a job's result; use ResultPath.
	PathResult = "/v1/jobs/{id}/result"
)

// ResultPath is the URL path an agent posts a job's result to.
func ResultPath(jobID string) string { return "/v1/jobs/" + jobID + "/result" }

// HeaderEndpoint names the endpoint a request is made for; the node key goes
// in "Authorization: Bearer <node key>".
const HeaderEndpoint = "X-Patchline-Endpoint"

// MaxBodyBytes bounds every request body the controller reads.
const MaxBodyBytes = 8 << 20

// EnrollRequest asks the controller for an endpoint identity. It is
// idempotent: the agent generates InstanceID and NodeKey once, stores them
// before sending, and a retried request with the same pair gets the same
// answer.
type EnrollRequest struct {
	Client     string            `json:"client"`
	Secret     string            `json:"secret"`
	InstanceID string            `json:"instanceId"`
	NodeKey    string            `json:"nodeKey"`
	Hostname   string            `json:"hostname"`
	OS         OS                `json:"os"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// EnrollResponse gives the agent its endpoint id and the key it must verify
// every job with.
type EnrollResponse struct {
	Endpoint string `json:"endpoint"`
	// SigningKey is the controller's ed25519 public job-signing key.
	SigningKey []byte `json:"signingKey"`
}

// Report replaces the endpoint's inventory.
type Report struct {
	// Seq grows with every report the agent makes (it survives restarts).
	// The controller refuses a report whose Seq is below the stored one's
	// with a conflict, so a late copy of an old report (a duplicate on a
	// flaky network) cannot undo a newer one; a retry of the same report
	// has the same Seq and is accepted.
	Seq int64 `json:"seq"`
	// JobSeq is the highest job sequence number the agent has seen. A
	// controller restored from a backup numbers its next jobs above it,
	// instead of sending jobs the agent refuses as replayed.
	JobSeq        int64             `json:"jobSeq,omitempty"`
	Hostname      string            `json:"hostname"`
	OS            OS                `json:"os"`
	Labels        map[string]string `json:"labels,omitempty"`
	RebootPending bool              `json:"rebootPending"`
	// Reboot is the agent's reboot state; nil from agents that predate it.
	Reboot  *RebootState `json:"reboot,omitempty"`
	Updates []*Update    `json:"updates"`
	// AgentVersion is the agent's build version (internal/buildinfo).
	AgentVersion string `json:"agentVersion,omitempty"`
}

// ReportResponse acknowledges a report.
type ReportResponse struct {
	Updates int `json:"updates"`
}

// JobUpdate is one update of a job, with what a backend needs to install it.
type JobUpdate struct {
	ID      string `json:"id"`
	Source  string `json:"source"`
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// JobPayload is the signed content of a job.
type JobPayload struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
	// Seq grows with every job made for the endpoint; an agent refuses a job
	// whose Seq is not above every one it has seen.
	Seq            int64       `json:"seq"`
	Updates        []JobUpdate `json:"updates"`
	NotAfter       time.Time   `json:"notAfter"`
	Reboot         string      `json:"reboot"`
	RebootDeadline string      `json:"rebootDeadline,omitempty"`
	Revision       string      `json:"revision"`
	IdempotencyKey string      `json:"idempotencyKey"`
	// The fields below are omitted when empty, so that a job without them
	// is signed over the same bytes as before they existed.

	// Action is ActionInstall ("") or ActionRollback.
	Action string `json:"action,omitempty"`
	// RebootPolicy supersedes Reboot and RebootDeadline when set.
	RebootPolicy *RebootPolicy `json:"rebootPolicy,omitempty"`
	Hooks        *JobHooks     `json:"hooks,omitempty"`
	Guards       *JobGuards    `json:"guards,omitempty"`
	// Emergency names the emergency entry that let the job through a
	// window or soak, for the agent's log and the result.
	Emergency string `json:"emergency,omitempty"`
}

// Canonical is the byte encoding a job is signed over: JSON of the fixed
// struct, whose field order and formatting encoding/json keeps stable.
func (p JobPayload) Canonical() ([]byte, error) {
	p.NotAfter = p.NotAfter.UTC()
	return json.Marshal(p)
}

// SignedJob is a job as delivered: the exact signed bytes and the signature.
// The agent verifies Signature over Payload and only then decodes Payload.
type SignedJob struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// SignJob signs p with the controller's key.
func SignJob(key ed25519.PrivateKey, p JobPayload) (SignedJob, error) {
	b, err := p.Canonical()
	if err != nil {
		return SignedJob{}, fmt.Errorf("encode job %s: %w", p.ID, err)
	}
	return SignedJob{Payload: b, Signature: ed25519.Sign(key, b)}, nil
}

// ErrBadSignature is returned by OpenJob for a job whose signature does not
// verify with the pinned key.
var ErrBadSignature = errors.New("job signature does not verify with the pinned controller key")

// OpenJob verifies a signed job with the pinned public key and decodes it. It
// checks only the signature; the agent checks endpoint, sequence and expiry.
func OpenJob(pub ed25519.PublicKey, j SignedJob) (JobPayload, error) {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, j.Payload, j.Signature) {
		return JobPayload{}, ErrBadSignature
	}
	var p JobPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return JobPayload{}, fmt.Errorf("decode signed job: %w", err)
	}
	return p, nil
}

// JobsResponse answers a long-poll: the jobs due for the endpoint, possibly
// none when the wait ran out.
type JobsResponse struct {
	Jobs []SignedJob `json:"jobs"`
}

// UpdateResult is what happened to one update of a job.
type UpdateResult struct {
	Update string `json:"update"`
	Result Result `json:"result"`
	Error  string `json:"error,omitempty"`
	// Output is the package tool's output, bounded by the agent.
	Output string    `json:"output,omitempty"`
	At     time.Time `json:"at"`
}

// ResultRequest reports a job's outcome. Posting it twice is harmless: the
// controller records the first copy and acknowledges both.
type ResultRequest struct {
	Job            string `json:"job"`
	IdempotencyKey string `json:"idempotencyKey"`
	// Refused is set when the agent would not run the job; Reason says why.
	Refused bool           `json:"refused,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Updates []UpdateResult `json:"updates"`
	// RebootPending is the endpoint's reboot state after the job.
	RebootPending bool `json:"rebootPending"`
	// InventorySeq is set in the result of a job the agent was running
	// when it stopped (its updates' results are ResultUnknown): the Seq of
	// the inventory report the agent sent after the restart, before this
	// result. A controller that holds that report (or a later one) knows
	// what the interrupted job left installed; without it (0, or a report
	// that did not arrive) it waits for the endpoint's next report.
	InventorySeq int64 `json:"inventorySeq,omitempty"`
	// JobSeq is the highest job sequence number the agent has seen, as in
	// Report. In the refusal of an open job the controller gave this
	// endpoint, the controller numbers the endpoint's next job above it,
	// so a job refused for its number can be planned again at once; any
	// other result's JobSeq is ignored.
	JobSeq int64 `json:"jobSeq,omitempty"`
	// Hooks are the results of the job's pre and post scripts.
	Hooks []HookResult `json:"hooks,omitempty"`
	// Reboot is the endpoint's reboot state after the job.
	Reboot *RebootState `json:"reboot,omitempty"`
}

// ResultResponse acknowledges a result; Duplicate is set when the
// controller already had it.
type ResultResponse struct {
	Duplicate bool `json:"duplicate"`
}

// Code is the machine-readable kind of an API error.
type Code string

// Error codes and the HTTP status each travels as.
const (
	CodeInvalid      Code = "invalid"      // 400: the request is wrong; do not retry
	CodeUnauthorized Code = "unauthorized" // 401: bad or missing credentials
	CodeForbidden    Code = "forbidden"    // 403: authenticated, but not allowed
	CodeNotFound     Code = "not_found"    // 404
	CodeConflict     Code = "conflict"     // 409
	CodeTooLarge     Code = "too_large"    // 413: body over MaxBodyBytes
	CodeRateLimited  Code = "rate_limited" // 429: retry after Retry-After
	CodeUnavailable  Code = "unavailable"  // 503: retry later
	CodeInternal     Code = "internal"     // 500: retry later
)

// codeStatus maps each code to its HTTP status. The numbers are written out
// so that this package, which the pure planner imports for the state
// vocabulary, does not link net/http.
var codeStatus = map[Code]int{
	CodeInvalid:      400,
	CodeUnauthorized: 401,
	CodeForbidden:    403,
	CodeNotFound:     404,
	CodeConflict:     409,
	CodeTooLarge:     413,
	CodeRateLimited:  429,
	CodeUnavailable:  503,
	CodeInternal:     500,
}

// Status is the HTTP status code an error of code c travels as.
func (c Code) Status() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return 500
}

// CodeForStatus maps an HTTP status back to a code, for errors without a
// decodable envelope.
func CodeForStatus(status int) Code {
	for c, s := range codeStatus {
		if s == status {
			return c
		}
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeInvalid
}

// Retryable reports whether a request that failed with c may succeed if
// sent again: 4xx are final except 429.
func (c Code) Retryable() bool {
	return c == CodeRateLimited || c == CodeUnavailable || c == CodeInternal
}

// Error is the body of every non-2xx answer: {"error": {...}}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// ErrorBody is the JSON envelope of an Error.
type ErrorBody struct {
	Error *Error `json:"error"`
}
