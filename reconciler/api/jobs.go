package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// maxResultUpdates bounds the updates of one job result.
const maxResultUpdates = 10_000

// waiters is the registry of long-polls waiting for jobs. A waiting poll
// costs one map entry and one channel; it blocks in a select, so ten
// thousand of them are ten thousand parked goroutines the HTTP server has
// anyway, and a Notify touches only the polls of the endpoints it names.
type waiters struct {
	gauge prometheus.Gauge

	mu sync.Mutex // guards byEndpoint and drained
	// byEndpoint holds the wake channels of each endpoint's waiting polls
	// (usually one; more when an agent's old poll has not timed out yet).
	byEndpoint map[string]map[chan struct{}]struct{}
	// drained is set by Drain; no poll waits after it.
	drained bool
	// drain is closed by Drain, waking every waiting poll at once.
	drain chan struct{}
}

func newWaiters(gauge prometheus.Gauge) *waiters {
	return &waiters{gauge: gauge, byEndpoint: make(map[string]map[chan struct{}]struct{}), drain: make(chan struct{})}
}

// add registers a poll of endpoint and returns the channel Notify wakes it
// on; ok is false after Drain. The channel has room for one wake-up, so a
// Notify that comes between two reads of the store is not lost.
func (ws *waiters) add(endpoint string) (ch chan struct{}, ok bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.drained {
		return nil, false
	}
	ch = make(chan struct{}, 1)
	set := ws.byEndpoint[endpoint]
	if set == nil {
		set = make(map[chan struct{}]struct{}, 1)
		ws.byEndpoint[endpoint] = set
	}
	set[ch] = struct{}{}
	ws.gauge.Inc()
	return ch, true
}

// remove unregisters a poll added with add.
func (ws *waiters) remove(endpoint string, ch chan struct{}) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.byEndpoint[endpoint]
	if _, ok := set[ch]; !ok {
		return
	}
	delete(set, ch)
	if len(set) == 0 {
		delete(ws.byEndpoint, endpoint)
	}
	ws.gauge.Dec()
}

// Notify wakes the waiting long-polls of endpoints, which then read their
// due jobs again. The controller calls it after CreateJobs committed, so
// a job planned for a waiting agent reaches it at once. It never blocks.
func (s *Server) Notify(endpoints ...string) {
	ws := s.waiters
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, ep := range endpoints {
		for ch := range ws.byEndpoint[ep] {
			select {
			case ch <- struct{}{}:
			default: // already woken and not yet read
			}
		}
	}
}

// Drain answers every waiting long-poll now, with the jobs already due or
// none, and makes later long-polls answer at once. Call it on shutdown
// before http.Server.Shutdown, which waits for running requests.
func (s *Server) Drain() {
	ws := s.waiters
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.drained {
		ws.drained = true
		close(ws.drain)
	}
}

// jobs handles GET /v1/jobs?wait=30s, the agent's long-poll: it answers at
// once with the endpoint's due jobs, or waits up to wait (capped at
// MaxWait) for jobs to be planned, and answers with none when the wait runs
// out. Delivered jobs are leased; one not answered before its lease ends is
// offered again.
func (s *Server) jobs(w http.ResponseWriter, r *http.Request, ep store.Enrollment) error {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errorf(protocol.CodeInvalid, "wait: %q is not a duration like 30s", v)
		}
		wait = min(d, s.cfg.MaxWait)
	}
	if wait > 0 {
		// The long-poll is exempt from the server's request timeout by
		// design: it may answer only after the wait it was granted, so
		// both its deadlines move by that wait. Left alone, the write
		// deadline would fail the answer, and the read deadline would
		// cancel the poll's context (the server reads the idle
		// connection in the background) once MaxWait nears a minute.
		s.extendDeadlines(w, wait)
	}
	ctx := r.Context()

	// Register before the first read of the store: a Notify for a job
	// committed after that read then finds the poll and wakes it.
	var wake chan struct{}
	if wait > 0 {
		var ok bool
		if wake, ok = s.waiters.add(ep.ID); ok {
			defer s.waiters.remove(ep.ID, wake)
		}
	}
	jobs, err := s.dueJobs(ctx, ep.ID)
	if err != nil {
		return err
	}
	if len(jobs) == 0 && wake != nil {
		timer := time.NewTimer(wait)
		defer timer.Stop()
	waiting:
		for len(jobs) == 0 {
			select {
			case <-wake:
				// A revocation or deletion wakes the poll too: it ends
				// with the refusal the agent's next request would get.
				if err := s.stillEnrolled(ctx, ep); err != nil {
					return err
				}
				if jobs, err = s.dueJobs(ctx, ep.ID); err != nil {
					return err
				}
			case <-s.waiters.drain:
				break waiting
			case <-timer.C:
				break waiting
			case <-ctx.Done():
				// The agent went away; nobody reads the answer.
				return nil
			}
		}
	}
	writeJSON(w, http.StatusOK, protocol.JobsResponse{Jobs: jobs})
	return nil
}

// dueJobs reads an endpoint's due jobs and leases them.
func (s *Server) dueJobs(ctx context.Context, endpoint string) ([]protocol.SignedJob, error) {
	now := s.cfg.Now()
	due, err := s.cfg.Store.DueJobs(ctx, endpoint, now)
	if err != nil {
		return nil, fmt.Errorf("due jobs of endpoint %q: %w", endpoint, err)
	}
	out := make([]protocol.SignedJob, 0, len(due))
	for _, j := range due {
		err := s.cfg.Store.LeaseJob(ctx, j.ID, now.Add(s.cfg.Lease))
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			continue // finished or gone since DueJobs read it
		}
		if err != nil {
			return nil, fmt.Errorf("lease job %q of endpoint %q: %w", j.ID, endpoint, err)
		}
		out = append(out, protocol.SignedJob{Payload: j.Payload, Signature: j.Signature})
	}
	return out, nil
}

// result handles POST /v1/jobs/{id}/result. Recording is idempotent: a
// repeated copy is answered {"duplicate": true}. A job of another endpoint
// is not found, as if it did not exist.
func (s *Server) result(w http.ResponseWriter, r *http.Request, ep store.Enrollment) error {
	jobID := r.PathValue("id")
	var req protocol.ResultRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	results, err := resultsOf(jobID, &req, s.cfg.Now())
	if err != nil {
		return err
	}
	if req.Refused {
		open, err := s.openJobUpdates(r.Context(), ep.ID, jobID)
		if err != nil {
			return err
		}
		if len(results) == 0 {
			// The agent would not trust the job's content, so it named
			// no updates: every update of the job is refused.
			for _, u := range open {
				results = append(results, store.UpdateResult{Update: u, Result: protocol.ResultRefused, Error: req.Reason})
			}
		}
		if len(open) > 0 && req.JobSeq > 0 {
			// A refusal may be for a number below what the agent has
			// seen (the store was restored from an older backup): raise
			// it before the result, whose re-plan may plan the job
			// again. Only a job the controller gave this endpoint, and
			// not yet answered, speaks for its numbers: a refusal of a
			// job that does not exist, is another endpoint's or was
			// answered already raises nothing.
			if err := s.cfg.Store.RaiseJobSeq(r.Context(), ep.ID, req.JobSeq); err != nil {
				return storeError(err, "endpoint not found")
			}
		}
	}
	rec, err := s.cfg.Store.RecordResult(r.Context(), jobID, ep.ID, results, s.cfg.Now())
	if err != nil {
		return storeError(err, fmt.Sprintf("job %q not found", jobID))
	}
	if !rec.Duplicate {
		s.recordHooks(r.Context(), ep, jobID, req.Hooks)
		s.cfg.Events.ResultRecorded(r.Context(), ep.Client, ep.ID, jobID, rec.Ring, results)
	}
	writeJSON(w, http.StatusOK, protocol.ResultResponse{Duplicate: rec.Duplicate})
	return nil
}

// resultsOf checks req, the result posted at now for the job at path
// jobID, and turns its updates into store results, in order. In a refusal
// every result is refused, its error the agent's reason when it gives one;
// a refusal may name no updates at all. Its errors are invalid-input
// errors for the agent.
func resultsOf(jobID string, req *protocol.ResultRequest, now time.Time) ([]store.UpdateResult, error) {
	if req.Job != "" && req.Job != jobID {
		return nil, errorf(protocol.CodeInvalid, "job: body names job %q, the path job %q", req.Job, jobID)
	}
	if len(req.Updates) > maxResultUpdates {
		return nil, errorf(protocol.CodeInvalid, "updates: %d results, at most %d are accepted", len(req.Updates), maxResultUpdates)
	}
	if err := checkSeq("jobSeq", req.JobSeq); err != nil {
		return nil, err
	}
	if err := checkSeq("inventorySeq", req.InventorySeq); err != nil {
		return nil, err
	}
	if err := checkHooksAndReboot(req); err != nil {
		return nil, err
	}
	if err := checkText("reason", protocol.TextLines, protocol.MaxErrorBytes, req.Reason); err != nil {
		return nil, err
	}
	results := make([]store.UpdateResult, 0, len(req.Updates))
	seen := make(map[string]bool, len(req.Updates))
	for i, u := range req.Updates {
		switch {
		case u.Update == "":
			return nil, errorf(protocol.CodeInvalid, "updates[%d].update: missing", i)
		case seen[u.Update]:
			return nil, errorf(protocol.CodeInvalid, "updates[%d].update: %.40q has two results", i, u.Update)
		case !req.Refused && !slices.Contains(protocol.Results, u.Result):
			return nil, errorf(protocol.CodeInvalid, "updates[%d].result: unknown result %.40q (want %s)", i, u.Result, strings.Join(protocol.ResultNames(), ", "))
		}
		if err := checkResultText(i, u); err != nil {
			return nil, err
		}
		seen[u.Update] = true
		res := store.UpdateResult{Update: u.Update, Result: u.Result, Error: u.Error, Output: u.Output, At: u.At}
		if checkTime(u.At, now) != nil {
			// An agent whose clock is far off (a refusal of an expired job
			// often comes from one) still has its result recorded: at the
			// time the controller received it, not at an impossible one.
			res.At = time.Time{}
		}
		if req.Refused {
			res.Result = protocol.ResultRefused
			if req.Reason != "" {
				res.Error = req.Reason
			}
		}
		if res.Result == protocol.ResultUnknown {
			res.InventorySeq = req.InventorySeq
		}
		results = append(results, res)
	}
	return results, nil
}

// checkResultText checks the text of u, the i-th update of a result.
func checkResultText(i int, u protocol.UpdateResult) error {
	p := "updates[" + strconv.Itoa(i) + "]."
	if err := checkText(p+"update", protocol.TextName, protocol.MaxIDBytes, u.Update); err != nil {
		return err
	}
	if err := checkText(p+"error", protocol.TextLines, protocol.MaxErrorBytes, u.Error); err != nil {
		return err
	}
	if err := checkText(p+"output", protocol.TextLines, protocol.MaxOutputBytes, u.Output); err != nil {
		return err
	}
	return nil
}

// checkHooksAndReboot checks what a result says of the job's scripts and
// of the reboot after it, by the rules of endpoint text.
func checkHooksAndReboot(req *protocol.ResultRequest) error {
	if len(req.Hooks) > 2 {
		return errorf(protocol.CodeInvalid, "hooks: %d results, a job has at most a pre and a post script", len(req.Hooks))
	}
	for i, h := range req.Hooks {
		p := "hooks[" + strconv.Itoa(i) + "]."
		if h.Hook != "pre" && h.Hook != "post" {
			return errorf(protocol.CodeInvalid, "%shook: %.40q is neither pre nor post", p, h.Hook)
		}
		for _, f := range []struct {
			name string
			kind protocol.TextKind
			max  int
			v    string
		}{
			{"path", protocol.TextName, protocol.MaxIDBytes, h.Path},
			{"error", protocol.TextLines, protocol.MaxErrorBytes, h.Error},
			{"output", protocol.TextLines, protocol.MaxOutputBytes, h.Output},
		} {
			if err := checkText(p+f.name, f.kind, f.max, f.v); err != nil {
				return err
			}
		}
	}
	if req.Reboot != nil {
		if err := req.Reboot.Validate(); err != nil {
			return errorf(protocol.CodeInvalid, "reboot.%v", err)
		}
	}
	return nil
}

// openJobUpdates returns the updates of jobID while it is an open job of
// endpoint (handed out or not, its window not yet over), found through the
// in-flight job of each update the endpoint reports. A job that is
// finished, expired, unknown or another endpoint's has none; RecordResult
// then tells a duplicate from a job that is not the endpoint's.
func (s *Server) openJobUpdates(ctx context.Context, endpoint, jobID string) ([]string, error) {
	e, err := s.cfg.Store.EndpointSnapshot(ctx, endpoint, s.cfg.Now())
	if err != nil {
		return nil, storeError(err, "endpoint not found")
	}
	var updates []string
	for _, u := range e.Updates {
		if u.InFlightJob != nil && *u.InFlightJob == jobID {
			updates = append(updates, u.ID)
		}
	}
	return updates, nil
}
