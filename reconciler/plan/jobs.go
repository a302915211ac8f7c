package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
)

// job plans the job of endpoint ep from its pairs decided want: Missing
// for an install job, Rollback for a rollback job.
func (p *planner) job(ep *protocol.Endpoint, cp *clientPlan, ring *ringPlan, pairs []pair, want Decision) (Job, error) {
	var ups []*protocol.Update
	var emergencies []int
	for k := range pairs {
		if pairs[k].v.d == want {
			ups = append(ups, pairs[k].u)
			// Only an entry that let the update through something names
			// the job: its rule is then the decision's.
			e := cp.ups[cp.index[pairs[k].u.ID]].emergency
			if e >= 0 && pairs[k].v.rule == cp.c.Emergency[e].Pos.Rule() && !slices.Contains(emergencies, e) {
				emergencies = append(emergencies, e)
			}
		}
	}
	ids, err := requiresOrder(ups)
	if err != nil {
		return Job{}, fmt.Errorf("endpoint %q: %w", ep.ID, err)
	}
	j := Job{
		Endpoint: ep.ID, Client: ep.Client, Ring: ring.ring.Name, Updates: ids,
		NotAfter: ring.end, Reboot: ring.ring.Reboot, Revision: p.fleet.Revision,
		RebootPolicy: ring.reboot, Hooks: ring.hooks, Guards: ring.guards,
	}
	if want == Rollback {
		j.Action = protocol.ActionRollback
	}
	if ring.ring.RebootDeadline > 0 {
		j.RebootDeadline = ring.ring.RebootDeadline.String()
	}
	start := ring.start
	if !ring.open {
		// Only emergency updates go through a closed window: their job
		// may run until the window next opens (then the window's own job
		// takes over) or the emergency ends, whichever comes first.
		start, j.NotAfter = p.now, ring.next
		for _, k := range emergencies {
			if until := cp.c.Emergency[k].Until; j.NotAfter.IsZero() || until.Before(j.NotAfter) {
				j.NotAfter = until.UTC()
			}
		}
	}
	slices.Sort(emergencies)
	names := make([]string, 0, len(emergencies))
	for _, k := range emergencies {
		e := &cp.c.Emergency[k]
		names = append(names, fmt.Sprintf("%s: %s (%s)", e.Update, e.Reason, e.Pos.Rule()))
	}
	j.Emergency = strings.Join(names, "; ")
	j.IdempotencyKey = idempotencyKey(ep.ID, ids, p.fleet.Revision, j.NotAfter, refusedIn(ups, start, j.NotAfter), interruptedJobs(ups), j.Action)
	return j, nil
}

// interruptedJobs counts the jobs that ended with an unknown outcome (the
// agent stopped while installing) for any of ups. An update still missing
// after an interruption is retried in the same window; the count makes
// the retry a new job, which neither the store nor the agent's record of
// the interrupted one answers. It only grows, so re-planning the retry
// gives the same key.
func interruptedJobs(ups []*protocol.Update) int {
	var jobs []string
	for _, u := range ups {
		for _, a := range u.Attempts {
			if a.Result == protocol.ResultUnknown && !slices.Contains(jobs, a.Job) {
				jobs = append(jobs, a.Job)
			}
		}
	}
	return len(jobs)
}

// maxRefusedRetries is how many times in one window occurrence an update
// whose job the agent refused is planned again at once. An agent refuses a
// job it cannot trust: most causes persist (a job signed by another key, a
// window already over), but a job numbered below what the agent has seen
// (a controller restored from an older backup) goes through once the
// number is corrected. The cap keeps a refusal that persists from turning
// into a stream of jobs; after it the updates wait for the next window.
const maxRefusedRetries = 2

// refusedIn counts the jobs, up to maxRefusedRetries, that refused any of
// ups during the window occurrence [start, end).
func refusedIn(ups []*protocol.Update, start, end time.Time) int {
	var jobs []string
	for _, u := range ups {
		for _, a := range u.Attempts {
			if a.Result == protocol.ResultRefused && !a.At.Before(start) && a.At.Before(end) && !slices.Contains(jobs, a.Job) {
				jobs = append(jobs, a.Job)
			}
		}
	}
	return min(len(jobs), maxRefusedRetries)
}

// idempotencyKey is the hex SHA-256 of the endpoint id, the update ids in
// order, the revision and the end of the window occurrence, each ended by a
// NUL byte so that no two lists hash alike, and of the number of refused
// jobs (see refusedIn) and of interrupted jobs (see interruptedJobs) when
// there are any. Re-planning the same work in the
// same window gives the same key, so neither the store nor the agent runs
// it twice; a retry in a later window (after a failure, or a job that
// expired unrun), or after a refusal, is a new job with a new key, which
// the agent must not answer from its record of the first one.
func idempotencyKey(endpoint string, updates []string, revision string, windowEnd time.Time, refused, interrupted int, action string) string {
	h := sha256.New()
	h.Write([]byte(endpoint))
	h.Write([]byte{0})
	for _, id := range updates {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	h.Write([]byte{0})
	h.Write([]byte(revision))
	h.Write([]byte{0})
	h.Write([]byte(windowEnd.UTC().Format(time.RFC3339)))
	if refused > 0 {
		h.Write([]byte{0})
		h.Write([]byte("refused " + strconv.Itoa(refused)))
	}
	if interrupted > 0 {
		h.Write([]byte{0})
		h.Write([]byte("interrupted " + strconv.Itoa(interrupted)))
	}
	if action != "" {
		// A rollback of the same updates is another job than their install.
		h.Write([]byte{0})
		h.Write([]byte("action " + action))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requiresOrder orders updates so that each comes after the updates it
// requires, breaking ties by id. Requires naming an update outside the list
// (installed, absent or not due) are ignored. A cycle is an error that names
// it.
func requiresOrder(ups []*protocol.Update) ([]string, error) {
	byID := make(map[string]*protocol.Update, len(ups))
	for _, u := range ups {
		byID[u.ID] = u
	}
	done := make(map[string]bool, len(ups))
	ready := func(u *protocol.Update) bool {
		for _, r := range u.Requires {
			if _, in := byID[r]; in && !done[r] && r != u.ID {
				return false
			}
		}
		return true
	}
	slices.SortFunc(ups, func(a, b *protocol.Update) int { return strings.Compare(a.ID, b.ID) })
	out := make([]string, 0, len(ups))
	for len(out) < len(ups) {
		progress := false
		// The first ready update in id order goes next, then the scan
		// starts again so that a newly freed lower id goes before higher.
		for _, u := range ups {
			if !done[u.ID] && ready(u) {
				done[u.ID] = true
				out = append(out, u.ID)
				progress = true
				break
			}
		}
		if !progress {
			return nil, fmt.Errorf("requires cycle: %s", cycle(ups, byID, done))
		}
	}
	return out, nil
}

// cycle finds a requires cycle among the updates not done, starting at the
// lowest id and following the lowest pending requirement.
func cycle(ups []*protocol.Update, byID map[string]*protocol.Update, done map[string]bool) string {
	var at *protocol.Update
	for _, u := range ups {
		if !done[u.ID] {
			at = u
			break
		}
	}
	seen := map[string]int{}
	var path []string
	for {
		if k, ok := seen[at.ID]; ok {
			return strings.Join(append(path[k:], at.ID), " -> ")
		}
		seen[at.ID] = len(path)
		path = append(path, at.ID)
		var nextID string
		for _, r := range at.Requires {
			if _, in := byID[r]; in && !done[r] && (nextID == "" || r < nextID) {
				nextID = r
			}
		}
		at = byID[nextID]
	}
}
