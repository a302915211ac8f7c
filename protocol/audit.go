package protocol

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// AuditKind names what an entry of the controller's audit log records.
type AuditKind string

// Audit entry kinds.
const (
	AuditRevisionApplied AuditKind = "revision-applied"
	AuditRevisionRefused AuditKind = "revision-refused"
	AuditJobCreated      AuditKind = "job-created"
	AuditJobResult       AuditKind = "job-result"
	AuditJobExpired      AuditKind = "job-expired"
	AuditHalt            AuditKind = "halt"
	AuditResume          AuditKind = "resume"
	AuditEnroll          AuditKind = "enroll"
	// AuditRestore: the store was replaced by a backup (patchd restore);
	// entries between the backup and the restore are not in it.
	AuditRestore AuditKind = "store-restored"
	// AuditTokenCreated and AuditTokenRevoked: an admin API token was
	// created or revoked; the detail names the token, its scopes and
	// clients, and "by", the token that did it.
	AuditTokenCreated AuditKind = "token-created"
	AuditTokenRevoked AuditKind = "token-revoked"
	// AuditEndpointRevoked: an endpoint's node key was revoked; its
	// history stays. AuditEndpointDeleted: an endpoint, its inventory and
	// its jobs were deleted; its audit entries stay. The detail says "by",
	// the token that did it.
	AuditEndpointRevoked AuditKind = "endpoint-revoked"
	AuditEndpointDeleted AuditKind = "endpoint-deleted"
)

// AuditEntry is one line of the controller's append-only audit log (the
// event log of what the controller did; the policy's own history is the
// fleet repo's Git log). Client, Endpoint, Revision and Job are set when
// the entry concerns one.
type AuditEntry struct {
	// ID is assigned by the store; ids only grow.
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Kind     AuditKind `json:"kind"`
	Client   string    `json:"client,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Revision string    `json:"revision,omitempty"`
	Job      string    `json:"job,omitempty"`
	// Detail is kind-specific JSON; empty when there is none.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// AuditPage is the answer of GET /v1/audit?after=ID&limit=N: entries after
// ID, oldest first. Next is the id to pass as ?after= for the following
// page; it stays the same when there is nothing newer yet.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next"`
}

// DecodeAuditPage reads one page of GET /v1/audit.
func DecodeAuditPage(r io.Reader) (AuditPage, error) {
	var page AuditPage
	if err := json.NewDecoder(r).Decode(&page); err != nil {
		return AuditPage{}, fmt.Errorf("decode audit page: %w", err)
	}
	return page, nil
}
