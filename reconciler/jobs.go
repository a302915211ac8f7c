package reconciler

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
	"github.com/patchline/patchline/reconciler/store"
)

// signJobs turns the planner's jobs into jobs to store: each gets a new id,
// the next sequence number on its endpoint (above last, the numbers each
// endpoint has seen) and the controller's signature over what the agent
// needs to run it, with the details of each update its backend needs from
// snap. Signing happens here, before the store's transaction: the store
// only checks that no other job took the number meanwhile.
func signJobs(key ed25519.PrivateKey, jobs []plan.Job, snap *protocol.Snapshot, last map[string]int64) ([]store.Job, error) {
	updates := make(map[string]map[string]*protocol.Update, len(snap.Endpoints))
	for _, ep := range snap.Endpoints {
		m := make(map[string]*protocol.Update, len(ep.Updates))
		for _, u := range ep.Updates {
			m[u.ID] = u
		}
		updates[ep.ID] = m
	}
	seqs := make(map[string]int64, len(jobs))
	out := make([]store.Job, len(jobs))
	for i, pj := range jobs {
		seq, ok := seqs[pj.Endpoint]
		if !ok {
			seq = last[pj.Endpoint]
		}
		seq++
		seqs[pj.Endpoint] = seq
		j := store.Job{Job: pj, ID: newJobID(), Seq: seq}
		p := protocol.JobPayload{
			ID: j.ID, Endpoint: j.Endpoint, Seq: j.Seq, NotAfter: j.NotAfter,
			Reboot: string(j.Reboot), RebootDeadline: j.RebootDeadline,
			Revision: j.Revision, IdempotencyKey: j.IdempotencyKey,
			// Reboot and RebootDeadline stay for agents that predate
			// RebootPolicy.
			Action: j.Action, RebootPolicy: j.RebootPolicy, Hooks: j.Hooks, Guards: j.Guards, Emergency: j.Emergency,
		}
		for _, id := range j.Updates {
			u, ok := updates[j.Endpoint][id]
			if v, agent := protocol.AgentUpdateVersion(id); !ok && agent {
				// The planner adds the agent update; no endpoint reports it.
				u, ok = protocol.AgentUpdate(v, ""), true
			}
			if !ok {
				return nil, fmt.Errorf("job for %s names update %s it does not report", j.Endpoint, id)
			}
			p.Updates = append(p.Updates, protocol.JobUpdate{ID: u.ID, Source: u.Source, Name: u.Name, Version: u.Version})
		}
		sj, err := protocol.SignJob(key, p)
		if err != nil {
			return nil, fmt.Errorf("sign job for %s: %w", j.Endpoint, err)
		}
		j.Payload, j.Signature = sj.Payload, sj.Signature
		out[i] = j
	}
	return out, nil
}

// newJobID returns a random job id (128 bits, lower-case base32). Ids are
// random rather than derived from the sequence so that a store started
// afresh never reuses an id an agent's outbox may still hold.
func newJobID() string {
	return strings.ToLower(rand.Text())
}
