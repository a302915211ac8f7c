package agent

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/patchline/patchline/protocol"
)

// maxJobIDLen bounds the job id taken from a payload whose signature did not
// verify, which is used only to address the refusal.
const maxJobIDLen = 256

// refusal is why the agent will not run a job. It becomes a ResultRequest
// with Refused set, so the controller sees every refusal.
type refusal struct {
	reason string
	// trusted is set when the payload verified with the pinned key, so its
	// id, idempotency key, updates and sequence number can be believed.
	trusted bool
}

func (r *refusal) Error() string { return "job refused: " + r.reason }

// verifyJob checks that a delivered job comes from the controller the agent
// enrolled with and is meant for this endpoint. It returns the payload, or
// a *refusal. It does not look at sequence or expiry (see checkFresh): a job
// the agent already finished is answered from the journal even when its
// sequence number is old, because the controller re-delivers a job whose
// result it has not seen.
func verifyJob(pub ed25519.PublicKey, self string, sj protocol.SignedJob) (protocol.JobPayload, error) {
	p, err := protocol.OpenJob(pub, sj)
	if err != nil {
		if errors.Is(err, protocol.ErrBadSignature) {
			return protocol.JobPayload{ID: unverifiedJobID(sj.Payload)}, &refusal{reason: "signature does not verify with the pinned controller key"}
		}
		return protocol.JobPayload{ID: unverifiedJobID(sj.Payload)}, &refusal{reason: "signed payload does not decode: " + err.Error()}
	}
	if p.ID == "" {
		return p, &refusal{reason: "job has no id", trusted: true}
	}
	if p.Endpoint != self {
		return p, &refusal{reason: fmt.Sprintf("job is for endpoint %q, this is %q", p.Endpoint, self), trusted: true}
	}
	if p.IdempotencyKey == "" {
		return p, &refusal{reason: "job has no idempotency key", trusted: true}
	}
	return p, nil
}

// checkFresh refuses a verified job that is a replay (its Seq is not above
// every sequence number the agent has accepted) or expired (now is past
// NotAfter).
func checkFresh(p protocol.JobPayload, lastSeq int64, now time.Time) error {
	if p.Seq <= lastSeq {
		return &refusal{reason: fmt.Sprintf("sequence %d is not above %d, the highest already seen: replayed or reordered job", p.Seq, lastSeq), trusted: true}
	}
	if !now.Before(p.NotAfter) {
		return &refusal{reason: fmt.Sprintf("job expired at %s", p.NotAfter.UTC().Format(time.RFC3339)), trusted: true}
	}
	return nil
}

// unverifiedJobID reads the id out of a payload whose signature failed, to
// address the refusal. Nothing else of such a payload is used.
func unverifiedJobID(payload []byte) string {
	var p struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &p) != nil || len(p.ID) > maxJobIDLen {
		return ""
	}
	return p.ID
}
