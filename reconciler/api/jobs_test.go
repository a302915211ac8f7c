package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// jobIDs lists the ids of jobs.
func jobIDs(jobs []protocol.JobPayload) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestLongPollAnswersAtOnceWhenJobsAreDue(t *testing.T) {
	e := newEnv(t)
	a, b := e.enroll("WS-001"), e.enroll("WS-002")
	j1 := e.createJob(a, "k1", "KB5044284")
	j2 := e.createJob(a, "k2", "Mozilla.Firefox@132.0.1")

	// A wait longer than the test allows: the answer must not wait.
	jobs, resp := e.poll(context.Background(), a, "10m")
	if resp.status != 200 {
		t.Fatalf("poll: %d %s", resp.status, resp.body)
	}
	if diff := cmp.Diff([]string{j1.ID, j2.ID}, jobIDs(jobs)); diff != "" {
		t.Fatalf("delivered jobs (-want +got):\n%s", diff)
	}
	if jobs[0].Endpoint != a.endpoint || jobs[0].Seq != 1 || jobs[1].Seq != 2 {
		t.Errorf("delivered payloads %+v: want the endpoint's jobs in sequence order", jobs)
	}

	if jobs, _ := e.poll(context.Background(), b, "0s"); len(jobs) != 0 {
		t.Errorf("another endpoint got %s's jobs %v", a.endpoint, jobIDs(jobs))
	}
	if jobs, _ := e.poll(context.Background(), a, "0s"); len(jobs) != 0 {
		t.Errorf("leased jobs were offered again before their lease ended: %v", jobIDs(jobs))
	}
	e.clock.Advance(DefaultLease)
	jobs, _ = e.poll(context.Background(), a, "0s")
	if diff := cmp.Diff([]string{j1.ID, j2.ID}, jobIDs(jobs)); diff != "" {
		t.Errorf("jobs offered again after the lease ended (-want +got):\n%s", diff)
	}
}

func TestLongPollGetsJobPlannedWhileWaiting(t *testing.T) {
	e := newEnv(t)
	a, b := e.enroll("WS-001"), e.enroll("WS-002")

	type answer struct {
		jobs []protocol.JobPayload
		resp response
	}
	got := make(chan answer, 1)
	go func() {
		jobs, resp := e.poll(context.Background(), a, "10m")
		got <- answer{jobs, resp}
	}()
	e.waitForPolls(a.endpoint, 1)

	// A Notify for another endpoint, and one before anything is due, do
	// not end the wait.
	e.api.Notify(b.endpoint, a.endpoint)
	e.waitForPolls(a.endpoint, 1)

	job := e.createJob(a, "k1", "KB5044284")
	e.api.Notify(a.endpoint)
	ans := <-got
	if ans.resp.status != 200 {
		t.Fatalf("poll: %d %s", ans.resp.status, ans.resp.body)
	}
	if diff := cmp.Diff([]string{job.ID}, jobIDs(ans.jobs)); diff != "" {
		t.Errorf("jobs delivered to the waiting agent (-want +got):\n%s", diff)
	}
}

func TestLongPollWaitRunsOut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxWait = 10 * time.Millisecond })
	a := e.enroll("WS-001")
	// ?wait= above MaxWait is capped to it, so this returns.
	jobs, resp := e.poll(context.Background(), a, "1h")
	if resp.status != 200 || len(jobs) != 0 {
		t.Fatalf("poll: %d %s, want 200 with no jobs", resp.status, resp.body)
	}
	var jr map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &jr); err != nil || string(jr["jobs"]) != "[]" {
		t.Errorf("empty answer is %s, want jobs as an empty list", resp.body)
	}
	if n := len(e.api.waiters.byEndpoint); n != 0 {
		t.Errorf("%d endpoints still registered after their polls ended", n)
	}
}

func TestDrainAnswersWaitingPolls(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	const polls = 3
	done := make(chan response, polls)
	for range polls {
		go func() {
			_, resp := e.poll(context.Background(), a, "10m")
			done <- resp
		}()
	}
	e.waitForPolls(a.endpoint, polls)
	e.api.Drain()
	for range polls {
		if resp := <-done; resp.status != 200 {
			t.Errorf("drained poll: %d %s", resp.status, resp.body)
		}
	}
	// After Drain a poll does not wait, but still gets what is due.
	job := e.createJob(a, "k1", "KB5044284")
	jobs, _ := e.poll(context.Background(), a, "10m")
	if diff := cmp.Diff([]string{job.ID}, jobIDs(jobs)); diff != "" {
		t.Errorf("poll after Drain (-want +got):\n%s", diff)
	}
	if jobs, resp := e.poll(context.Background(), a, "10m"); resp.status != 200 || len(jobs) != 0 {
		t.Errorf("poll after Drain with nothing due: %d %s", resp.status, resp.body)
	}
}

func TestLongPollEndsWhenAgentGoesAway(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+protocol.PathJobs+"?wait=10m", nil)
		if err != nil {
			done <- err
			return
		}
		for i := 0; i+1 < len(a.auth()); i += 2 {
			req.Header.Set(a.auth()[i], a.auth()[i+1])
		}
		resp, err := e.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	e.waitForPolls(a.endpoint, 1)
	cancel()
	if err := <-done; err == nil {
		t.Error("cancelled poll got an answer")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.api.waiters.mu.Lock()
		n := len(e.api.waiters.byEndpoint)
		e.api.waiters.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server kept waiting for an agent that went away")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLongPollBadWait(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	for _, wait := range []string{"soon", "-1s", "30"} {
		_, resp := e.poll(context.Background(), a, wait)
		if resp.status != 400 || resp.errorBody(t).Code != protocol.CodeInvalid {
			t.Errorf("wait=%s: %d %s, want 400 invalid", wait, resp.status, resp.body)
		}
	}
}

func TestResult(t *testing.T) {
	e := newEnv(t)
	a, b := e.enroll("WS-001"), e.enroll("WS-002")
	for _, ag := range []agent{a, b} {
		if resp := e.post(protocol.PathReport, reportFixture(t), ag.auth()...); resp.status != 200 {
			t.Fatalf("report: %d %s", resp.status, resp.body)
		}
	}
	ok := e.createJob(a, "k-ok", "KB5044284", "Mozilla.Firefox@132.0.1")
	refused := e.createJob(b, "k-refused", "KB5044284", "Mozilla.Firefox@132.0.1")
	e.events.take()

	at := t0.Add(30 * time.Minute)
	success := protocol.ResultRequest{Job: ok.ID, IdempotencyKey: "k-ok", Updates: []protocol.UpdateResult{
		{Update: "KB5044284", Result: protocol.ResultSucceeded, At: at},
		{Update: "Mozilla.Firefox@132.0.1", Result: protocol.ResultFailed, Error: "exit code 1603", At: at},
	}, Hooks: []protocol.HookResult{
		{Hook: "pre", Path: "scripts/stop-ehr.ps1"},
		{Hook: "post", Path: "scripts/start-ehr.ps1", ExitCode: 1, Error: "exit status 1", Output: "EHR service did not start"},
	}}
	refusal := protocol.ResultRequest{Job: refused.ID, Refused: true, Reason: "signature does not verify", Updates: []protocol.UpdateResult{}, JobSeq: 40}
	tests := []struct {
		name       string
		who        agent
		job        string
		body       any
		wantStatus int
		wantDup    bool
		wantEvents []string
	}{
		{name: "result recorded", who: a, job: ok.ID, body: success, wantStatus: 200,
			wantEvents: []string{"result acme " + a.endpoint + " " + ok.ID + " canary KB5044284=succeeded,Mozilla.Firefox@132.0.1=failed"}},
		{name: "outbox retry is a duplicate", who: a, job: ok.ID, body: success, wantStatus: 200, wantDup: true},
		{name: "another endpoint's job is not found", who: a, job: refused.ID, body: refusal, wantStatus: 404},
		{name: "unknown job", who: a, job: "no-such-job", body: protocol.ResultRequest{}, wantStatus: 404},
		{name: "body names another job", who: b, job: refused.ID, body: success, wantStatus: 400},
		{name: "result for an update the job lacks", who: b, job: refused.ID, body: protocol.ResultRequest{Updates: []protocol.UpdateResult{
			{Update: "KB0000000", Result: protocol.ResultSucceeded}}}, wantStatus: 400},
		{name: "unknown result", who: b, job: refused.ID, body: protocol.ResultRequest{Updates: []protocol.UpdateResult{
			{Update: "KB5044284", Result: "maybe"}}}, wantStatus: 400},
		{name: "two results for one update", who: b, job: refused.ID, body: protocol.ResultRequest{Updates: []protocol.UpdateResult{
			{Update: "KB5044284", Result: protocol.ResultSucceeded}, {Update: "KB5044284", Result: protocol.ResultFailed}}}, wantStatus: 400},
		{name: "negative job sequence", who: b, job: refused.ID, body: protocol.ResultRequest{JobSeq: -3}, wantStatus: 400},
		{name: "a hook that is neither pre nor post", who: b, job: refused.ID, body: protocol.ResultRequest{Hooks: []protocol.HookResult{{Hook: "during"}}}, wantStatus: 400},
		{name: "a terminal escape in a hook's output", who: b, job: refused.ID, body: protocol.ResultRequest{Hooks: []protocol.HookResult{
			{Hook: "pre", Path: "scripts/stop-ehr.ps1", ExitCode: 1, Output: "stopped\u001b[2J"}}}, wantStatus: 400},
		{name: "an unknown reboot mode after the job", who: b, job: refused.ID, body: protocol.ResultRequest{Reboot: &protocol.RebootState{Mode: "soon"}}, wantStatus: 400},
		{name: "negative inventory sequence", who: b, job: refused.ID, body: protocol.ResultRequest{InventorySeq: -1}, wantStatus: 400},
		{name: "refusal naming no updates refuses the whole job", who: b, job: refused.ID, body: refusal, wantStatus: 200,
			wantEvents: []string{"result acme " + b.endpoint + " " + refused.ID + " canary KB5044284=refused,Mozilla.Firefox@132.0.1=refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.post(protocol.ResultPath(tt.job), tt.body, tt.who.auth()...)
			if resp.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
			if tt.wantStatus == 200 {
				var rr protocol.ResultResponse
				if err := json.Unmarshal(resp.body, &rr); err != nil || rr.Duplicate != tt.wantDup {
					t.Errorf("answer %s, want duplicate %v", resp.body, tt.wantDup)
				}
			}
			if diff := cmp.Diff(tt.wantEvents, e.events.take()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}

	// The failed post script is counted once (not again for the
	// outbox's retry); the pre script that worked is not.
	if got := testutil.ToFloat64(e.api.hookFailures.WithLabelValues("post")); got != 1 {
		t.Errorf("patchline_hook_failures_total{hook=post} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(e.api.hookFailures.WithLabelValues("pre")); got != 0 {
		t.Errorf("patchline_hook_failures_total{hook=pre} = %v, want 0", got)
	}

	// The refusal said the agent had seen job 40: the next job is above.
	if next := e.createJob(b, "k-after-refusal", "KB5044284"); next.Seq != 41 {
		t.Errorf("job after a refusal from an agent at 40 numbered %d, want 41", next.Seq)
	}

	// What the results left in the reported state.
	type attempt struct {
		Endpoint, Update string
		Result           protocol.Result
		Error            string
	}
	var got []attempt
	snap, err := e.db.Snapshot(context.Background(), e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range snap.Endpoints {
		for _, u := range ep.Updates {
			for _, at := range u.Attempts {
				got = append(got, attempt{ep.ID, u.ID, at.Result, at.Error})
			}
		}
	}
	want := []attempt{
		{a.endpoint, "KB5044284", protocol.ResultSucceeded, ""},
		{a.endpoint, "Mozilla.Firefox@132.0.1", protocol.ResultFailed, "exit code 1603"},
		{b.endpoint, "KB5044284", protocol.ResultRefused, "signature does not verify"},
		{b.endpoint, "Mozilla.Firefox@132.0.1", protocol.ResultRefused, "signature does not verify"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded attempts (-want +got):\n%s", diff)
	}
}

// TestRefusalRaisesJobNumbersOnlyForARealJob: a refusal says how far the
// agent's job numbers are, and the endpoint's next job is numbered above
// them, only when it refuses a job the controller gave that endpoint and
// it has not answered yet.
func TestRefusalRaisesJobNumbersOnlyForARealJob(t *testing.T) {
	const farAhead = 1 << 53
	tests := []struct {
		name string
		// refuse posts the refusals of the case and returns the status
		// of the last one; mine is a job of a, theirs one of another
		// endpoint.
		refuse     func(t *testing.T, e *env, a agent, mine, theirs store.Job) int
		wantStatus int
		wantNext   int64
	}{
		{name: "refusal of the endpoint's own open job", refuse: func(t *testing.T, e *env, a agent, mine, _ store.Job) int {
			return e.post(protocol.ResultPath(mine.ID), refusalAt(mine.ID, 40), a.auth()...).status
		}, wantStatus: 200, wantNext: 41},
		{name: "refusal of a job that does not exist", refuse: func(t *testing.T, e *env, a agent, _, _ store.Job) int {
			return e.post(protocol.ResultPath("no-such-job"), refusalAt("no-such-job", farAhead), a.auth()...).status
		}, wantStatus: 404, wantNext: 2},
		{name: "refusal of another endpoint's job", refuse: func(t *testing.T, e *env, a agent, _, theirs store.Job) int {
			return e.post(protocol.ResultPath(theirs.ID), refusalAt(theirs.ID, farAhead), a.auth()...).status
		}, wantStatus: 404, wantNext: 2},
		{name: "second refusal of a job already answered", refuse: func(t *testing.T, e *env, a agent, mine, _ store.Job) int {
			if resp := e.post(protocol.ResultPath(mine.ID), refusalAt(mine.ID, 40), a.auth()...); resp.status != 200 {
				t.Fatalf("first refusal: %d %s", resp.status, resp.body)
			}
			return e.post(protocol.ResultPath(mine.ID), refusalAt(mine.ID, farAhead), a.auth()...).status
		}, wantStatus: 200, wantNext: 41},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a, b := e.enroll("WS-001"), e.enroll("WS-002")
			for _, ag := range []agent{a, b} {
				if resp := e.post(protocol.PathReport, reportFixture(t), ag.auth()...); resp.status != 200 {
					t.Fatalf("report: %d %s", resp.status, resp.body)
				}
			}
			mine := e.createJob(a, "k-mine", "KB5044284")
			theirs := e.createJob(b, "k-theirs", "KB5044284")
			if got := tt.refuse(t, e, a, mine, theirs); got != tt.wantStatus {
				t.Fatalf("refusal answered %d, want %d", got, tt.wantStatus)
			}
			if next := e.createJob(a, "k-next", "Mozilla.Firefox@132.0.1"); next.Seq != tt.wantNext {
				t.Errorf("next job of the endpoint numbered %d, want %d", next.Seq, tt.wantNext)
			}
		})
	}
}

// refusalAt is a refusal of job that names no updates, from an agent that
// has seen job numbers up to seq.
func refusalAt(job string, seq int64) protocol.ResultRequest {
	return protocol.ResultRequest{Job: job, Refused: true, Reason: "sequence 1 is not above 40", Updates: []protocol.UpdateResult{}, JobSeq: seq}
}

// TestResultTextAndTimes: a result's texts follow the rules of endpoint
// text (an error or tool output may span lines; nothing may drive a
// terminal) and its times must be plausible. A refused result records
// nothing.
func TestResultTextAndTimes(t *testing.T) {
	e := newEnv(t)
	a := e.enroll("WS-001")
	if resp := e.post(protocol.PathReport, reportFixture(t), a.auth()...); resp.status != 200 {
		t.Fatalf("report: %d %s", resp.status, resp.body)
	}
	job := e.createJob(a, "k-text", "KB5044284")
	e.events.take()
	before := e.stateJSON()

	failed := func(u protocol.UpdateResult) protocol.ResultRequest {
		if u.Update == "" {
			u.Update = "KB5044284"
		}
		u.Result = protocol.ResultFailed
		return protocol.ResultRequest{Job: job.ID, Updates: []protocol.UpdateResult{u}}
	}
	tests := []struct {
		name string
		body protocol.ResultRequest
		want string
	}{
		{"terminal escape in the error", failed(protocol.UpdateResult{Error: "exit 1\x1b]0;pwned\x07"}),
			"updates[0].error: control character U+001B at byte 6"},
		{"NUL in the output", failed(protocol.UpdateResult{Output: "Reading package lists...\x00"}),
			"updates[0].output: control character U+0000 at byte 24"},
		{"right-to-left override in the update id", failed(protocol.UpdateResult{Update: "KB\u202e4824405"}),
			"updates[0].update: invisible format character U+202E at byte 2"},
		{"output over the bound", failed(protocol.UpdateResult{Output: strings.Repeat("x", protocol.MaxOutputBytes+1)}),
			"updates[0].output: 65537 bytes, at most 65536 are accepted"},
		{"terminal escape in a refusal's reason", protocol.ResultRequest{Job: job.ID, Refused: true, Reason: "expired\x1b[2J"},
			"reason: control character U+001B at byte 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.post(protocol.ResultPath(job.ID), tt.body, a.auth()...)
			if resp.status != 400 {
				t.Fatalf("status %d, want 400: %s", resp.status, resp.body)
			}
			if msg := resp.errorBody(t).Message; !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
			if got := e.stateJSON(); got != before {
				t.Errorf("a refused result changed the stored state:\n%s", cmp.Diff(before, got))
			}
		})
	}

	// Output over several lines, with tabs, as a package tool prints it,
	// from an agent whose clock says 9999: recorded, at the controller's
	// time of receipt.
	ok := failed(protocol.UpdateResult{Error: "exit code 100", Output: "E: Unable to fetch\n\thttp://deb.debian.org/ 404",
		At: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)})
	if resp := e.post(protocol.ResultPath(job.ID), ok, a.auth()...); resp.status != 200 {
		t.Fatalf("a result whose output spans lines: %d %s, want 200", resp.status, resp.body)
	}
	if got := e.stateJSON(); strings.Contains(got, "9999") || strings.Contains(got, "1816") {
		t.Errorf("an impossible result time reached the store:\n%s", got)
	}
}
