package commitstatus

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/internal/clock"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

// start is when the tests' clocks start.
var start = time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)

// halt is a rollout halted by its canary ring, as the planner says it.
var halt = protocol.Halt{Update: "KB5034441", Ring: "canary",
	Reason: "halted in ring canary: 1 of 1 endpoints failed (100%), above maxFailures 0%; a resume entry lifts it"}

// The problems of the refused revisions, as the loader words them.
const (
	acmeProblem = `clients/acme/policy.cue:7:3: baseline.approve.0.reasn: field not allowed (did you mean "reason"?)`
	rootProblem = "fleet.cue:12:5: rings.1.minSuccess: invalid value 1.5 (out of bound <=1)"
)

// lifeOfAFleet sends the notifier what the controller reports over a few
// commits: one applied to every client, one refused for a client, one
// refused whole, one refused by the signature check, a halt and its
// resume.
func lifeOfAFleet(n *Notifier) {
	n.Applied(revA, []string{"globex", "acme"}, nil)
	n.Applied(revB, []string{"globex"}, map[string][]string{"acme": {acmeProblem}})
	n.Refused(revC, "", "invalid", []string{rootProblem, "fleet.cue:13:5: rings.1.soak: invalid duration \"2 days\""})
	n.Refused(revD, "", "verify", []string{"commit d4d4d4d4d4d4 (tess@msp.example) is not signed by an allowed key"})
	n.Halts(revA, "acme", []protocol.Halt{halt})
	n.Halts(revE, "acme", nil)
}

// want is a status as a test expects the forge to receive it.
type want struct {
	revision, context string
	success           bool
	desc              string
}

// wantLife is what lifeOfAFleet posts, in order.
var wantLife = []want{
	{revA, "patchline/apply", true, "applied to 2 clients"},
	{revB, "patchline/apply", false, "1 of 2 clients refused: " + acmeProblem},
	{revB, "patchline/apply/acme", false, "refused: " + acmeProblem},
	{revC, "patchline/apply", false, "refused (2 problems): " + rootProblem},
	{revD, "patchline/apply", false, "refused by the signature and history check: commit d4d4d4d4d4d4 (tess@msp.example) is not signed by an allowed key"},
	{revA, "patchline/rollout/acme", false, "KB5034441 " + halt.Reason},
	{revE, "patchline/rollout/acme", true, "no rollout halted"},
}

// check compares what f accepted with ws, in order.
func check(t *testing.T, f *forge, ws []want) {
	t.Helper()
	compare(t, f, ws)
}

// checkAnyOrder compares what f accepted with ws, in any order: statuses
// of different commits or contexts may overtake each other.
func checkAnyOrder(t *testing.T, f *forge, ws []want) {
	t.Helper()
	compare(t, f, ws, cmpopts.SortSlices(func(a, b got) bool { return a.Revision+a.Context < b.Revision+b.Context }))
}

// got is a status the forge accepted, as the tests compare it.
type got struct{ Revision, Context, State, Desc string }

func compare(t *testing.T, f *forge, ws []want, opts ...cmp.Option) {
	t.Helper()
	var gotList, wantList []got
	for _, r := range f.accepted() {
		gotList = append(gotList, got{r.revision, r.context, r.state, r.desc})
	}
	cfg := Config{Provider: f.provider}
	for _, w := range ws {
		st := Failure
		if w.success {
			st = Success
		}
		wantList = append(wantList, got{w.revision, w.context, cfg.state(st), w.desc})
	}
	if diff := cmp.Diff(wantList, gotList, opts...); diff != "" {
		t.Errorf("statuses the forge accepted (-want +got):\n%s", diff)
	}
}

// TestStatusesReachEachForge: applied, refused with the problem, and
// halted, on each provider, in the provider's documented request shape
// (the forge checks it; the golden files show it), one request a second.
func TestStatusesReachEachForge(t *testing.T) {
	for _, p := range []Provider{GitHub, GitLab, Gitea} {
		t.Run(string(p), func(t *testing.T) {
			clk := clock.NewFake(start)
			f := newForge(t, p, clk)
			n, reg := startNotifier(t, f.config(), clk)
			lifeOfAFleet(n)
			// The forge accepts a status before the worker reads the
			// answer and counts it: wait for both.
			drive(t, clk, "every status", func() bool {
				return len(f.accepted()) >= len(wantLife) &&
					counter(t, reg, "patchline_commit_status_sent_total", map[string]string{"provider": string(p)}) >= float64(len(wantLife))
			})
			check(t, f, wantLife)
			var text strings.Builder
			got := f.accepted()
			for i, r := range got {
				text.WriteString(r.text + "\n")
				if i > 0 && r.at.Sub(got[i-1].at) < minInterval {
					t.Errorf("request %d came %v after the one before, want at least %v", i+1, r.at.Sub(got[i-1].at), minInterval)
				}
			}
			golden.Check(t, filepath.Join("testdata", string(p)+".txt"), []byte(strings.ReplaceAll(text.String(), f.srv.URL, "")))
			if v := counter(t, reg, "patchline_commit_status_sent_total", map[string]string{"provider": string(p)}); v != float64(len(wantLife)) {
				t.Errorf("sent counter %v, want %d", v, len(wantLife))
			}
		})
	}
}

// returns fails the test if f does not return: the controller's hooks
// must never wait for the forge.
func returns(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s waits for the forge", what)
	}
}

// TestOutageNeitherBlocksNorLosesAStatus: while the forge hangs and then
// fails, the controller's hooks return at once; once it is back, the
// latest status of each commit and context arrives, and a stale one that
// a newer replaced never does.
func TestOutageNeitherBlocksNorLosesAStatus(t *testing.T) {
	for _, p := range []Provider{GitHub, GitLab, Gitea} {
		t.Run(string(p), func(t *testing.T) {
			clk := clock.NewFake(start)
			f := newForge(t, p, clk)
			hung, release := make(chan struct{}), make(chan struct{})
			var down atomic.Bool
			down.Store(true)
			f.setAnswer(func(n int) (int, http.Header, string) {
				if n == 1 {
					close(hung)
					<-release
				}
				if down.Load() {
					return http.StatusInternalServerError, nil, `{"message": "Internal Server Error"}`
				}
				return http.StatusCreated, nil, `{"id": 2}`
			})
			n, reg := startNotifier(t, f.config(), clk)
			n.Halts(revA, "acme", []protocol.Halt{halt})
			<-hung
			// The worker is stuck in a request the forge does not answer.
			returns(t, "Applied", func() { n.Applied(revB, []string{"acme", "globex"}, nil) })
			returns(t, "Halts", func() { n.Halts(revA, "acme", nil) })
			close(release)
			drive(t, clk, "retries while the forge is down", func() bool { return f.requestCount() >= 6 })
			returns(t, "Refused", func() { n.Refused(revC, "", "invalid", []string{rootProblem}) })
			down.Store(false)
			labels := map[string]string{"provider": string(p)}
			// The forge accepts a status before the worker reads the
			// answer and counts it: wait for both.
			drive(t, clk, "every status after the outage", func() bool {
				return len(f.accepted()) >= 3 && counter(t, reg, "patchline_commit_status_sent_total", labels) >= 3
			})
			checkAnyOrder(t, f, []want{
				{revB, "patchline/apply", true, "applied to 2 clients"},
				{revA, "patchline/rollout/acme", true, "no rollout halted"},
				{revC, "patchline/apply", false, "refused: " + rootProblem},
			})
			if v := counter(t, reg, "patchline_commit_status_failures_total", labels); v < 5 {
				t.Errorf("failures counter %v, want the failed requests (5 or more) counted", v)
			}
			if v := counter(t, reg, "patchline_commit_status_sent_total", labels); v != 3 {
				t.Errorf("sent counter %v, want 3", v)
			}
			for _, reason := range []string{"queue_full", "rejected"} {
				if v := counter(t, reg, "patchline_commit_status_dropped_total", map[string]string{"provider": string(p), "reason": reason}); v != 0 {
					t.Errorf("dropped{%s} %v, want 0: nothing is lost", reason, v)
				}
			}
		})
	}
}

// TestRateLimitsAreWaitedOut: a forge that says it is rate-limiting gets
// no request before the time it asks for.
func TestRateLimitsAreWaitedOut(t *testing.T) {
	tests := []struct {
		name     string
		provider Provider
		code     int
		header   http.Header
		body     string
		wait     time.Duration
	}{
		{"GitHub's secondary limit with Retry-After", GitHub, http.StatusForbidden, http.Header{"Retry-After": {"90"}},
			`{"message": "You have exceeded a secondary rate limit."}`, 90 * time.Second},
		{"GitHub's primary limit spent until the reset", GitHub, http.StatusForbidden,
			http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(start.Add(10*time.Minute).Unix(), 10)}},
			`{"message": "API rate limit exceeded"}`, 10 * time.Minute},
		{"GitHub's secondary limit without a header", GitHub, http.StatusForbidden, nil,
			`{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`, time.Minute},
		{"GitLab's 429 with Retry-After", GitLab, http.StatusTooManyRequests, http.Header{"Retry-After": {"120"}},
			`{"message": "Retry later"}`, 2 * time.Minute},
		{"Gitea's 429 with a Retry-After date", Gitea, http.StatusTooManyRequests,
			http.Header{"Retry-After": {start.Add(5 * time.Minute).Format(http.TimeFormat)}}, `{"message": "rate limited"}`, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			f := newForge(t, tt.provider, clk)
			f.setAnswer(func(n int) (int, http.Header, string) {
				if n == 1 {
					return tt.code, tt.header, tt.body
				}
				return http.StatusCreated, nil, `{}`
			})
			n, _ := startNotifier(t, f.config(), clk)
			n.Applied(revA, []string{"acme"}, nil)
			n.Applied(revB, []string{"acme"}, nil)
			drive(t, clk, "both statuses", func() bool { return len(f.accepted()) == 2 })
			for _, r := range f.accepted() {
				if got := r.at.Sub(start); got < tt.wait {
					t.Errorf("status of %s sent %v after the rate limit, want %v or more", r.revision[:6], got, tt.wait)
				}
			}
		})
	}
}

// TestRefusedStatusIsGivenUp: a status the forge refuses for good (a
// wrong repository, token or commit) is counted and dropped, never tried
// again, and holds no later status back.
func TestRefusedStatusIsGivenUp(t *testing.T) {
	for _, code := range []int{http.StatusNotFound, http.StatusUnauthorized, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			clk := clock.NewFake(start)
			f := newForge(t, GitHub, clk)
			f.setAnswer(func(n int) (int, http.Header, string) {
				if n == 1 {
					return code, nil, `{"message": "` + http.StatusText(code) + `"}`
				}
				return http.StatusCreated, nil, `{}`
			})
			n, reg := startNotifier(t, f.config(), clk)
			n.Applied(revA, []string{"acme"}, nil)
			n.Applied(revB, []string{"acme"}, nil)
			drive(t, clk, "the second status", func() bool { return len(f.accepted()) == 1 })
			check(t, f, []want{{revB, "patchline/apply", true, "applied to 1 client"}})
			if got := f.requestCount(); got != 2 {
				t.Errorf("%d requests, want 2: a refused status is not tried again", got)
			}
			if v := counter(t, reg, "patchline_commit_status_dropped_total", map[string]string{"provider": "github", "reason": "rejected"}); v != 1 {
				t.Errorf("dropped{rejected} %v, want 1", v)
			}
		})
	}
}

// TestGitLabStatusAlreadySet: GitLab answers 400 to a status posted
// again in the state it has (after a restart); that status is set, not
// refused.
func TestGitLabStatusAlreadySet(t *testing.T) {
	clk := clock.NewFake(start)
	f := newForge(t, GitLab, clk)
	f.setAnswer(func(n int) (int, http.Header, string) {
		return http.StatusBadRequest, nil, `{"message": "Cannot transition status via :drop from :failed (Reason(s): Status cannot transition via \"drop\")"}`
	})
	n, reg := startNotifier(t, f.config(), clk)
	n.Refused(revC, "", "invalid", []string{rootProblem})
	labels := map[string]string{"provider": "gitlab"}
	drive(t, clk, "the answer", func() bool { return counter(t, reg, "patchline_commit_status_sent_total", labels) == 1 })
	if v := counter(t, reg, "patchline_commit_status_failures_total", labels); v != 0 {
		t.Errorf("failures counter %v, want 0", v)
	}
}

// TestFullQueueDropsTheOldest: statuses never wait without bound; the
// oldest go first, counted, and a newer status of the same commit and
// context takes the place of the waiting one.
func TestFullQueueDropsTheOldest(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, err := New(Config{Provider: Gitea, API: "http://127.0.0.1:1/api/v1", Repo: "msp/fleet", Token: testToken},
		Options{Clock: clock.NewFake(start), Logger: discard, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rev := func(i int) string { return fmt.Sprintf("%040x", i) }
	for i := range queueLimit + 2 {
		n.Applied(rev(i), []string{"acme"}, nil)
	}
	// A newer verdict on a waiting commit replaces its status in place.
	n.Refused(rev(5), "", "invalid", []string{rootProblem})
	if len(n.queue) != queueLimit {
		t.Fatalf("%d statuses wait, want %d", len(n.queue), queueLimit)
	}
	if got := n.queue[0].status.Revision; got != rev(2) {
		t.Errorf("the oldest waiting status is of %s, want %s: the two oldest are dropped", got, rev(2))
	}
	if got := n.queue[3].status; got.Revision != rev(5) || got.State != Failure {
		t.Errorf("the fourth waiting status is %+v, want the refusal of %s in its place", got, rev(5))
	}
	if v := counter(t, reg, "patchline_commit_status_dropped_total", map[string]string{"provider": "gitea", "reason": "queue_full"}); v != 2 {
		t.Errorf("dropped{queue_full} %v, want 2", v)
	}
}

// TestStopsWhileTheForgeHangs: patchd's shutdown is not held up by a
// forge that does not answer.
func TestStopsWhileTheForgeHangs(t *testing.T) {
	clk := clock.NewFake(start)
	f := newForge(t, GitHub, clk)
	hung, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	f.setAnswer(func(n int) (int, http.Header, string) {
		close(hung)
		<-release
		return http.StatusCreated, nil, `{}`
	})
	n, err := New(f.config(), Options{Clock: clk, Logger: discard, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.Applied(revA, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	<-hung
	cancel()
	returns(t, "Run", func() { <-done })
}

// TestNilNotifierPostsNothing: without --status-provider the hooks and
// the worker do nothing.
func TestNilNotifierPostsNothing(t *testing.T) {
	n, err := New(Config{}, Options{})
	if err != nil || n != nil {
		t.Fatalf("New of no provider: %v, %v; want nil, nil", n, err)
	}
	lifeOfAFleet(n)
	n.Run(context.Background())
}
