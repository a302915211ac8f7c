package service

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// step is one thing the SCM (or the agent) does to a running control
// handler, and the statuses the handler must report in answer.
type step struct {
	// One of: a request from the SCM, a progress tick, or run returning
	// with finish's code.
	request svcCmd
	tick    bool
	finish  *int
	want    []svcStatus
}

func code(c int) *int { return &c }

var (
	startPending = svcStatus{State: stateStartPending}
	running      = svcStatus{State: stateRunning, Accepts: acceptStop | acceptShutdown}
)

func stopPending(checkPoint uint32) svcStatus {
	return svcStatus{State: stateStopPending, CheckPoint: checkPoint, WaitHint: 10000}
}

func TestControl(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		// wantCancelled is whether run's context was cancelled when it
		// returned; wantCode the handler's exit status.
		wantCancelled bool
		wantCode      int
	}{
		{
			name: "stop cancels the agent, which finishes its job and exits 0",
			steps: []step{
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "shutdown is a stop",
			steps: []step{
				{request: cmdShutdown, want: []svcStatus{stopPending(1)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "interrogate answers the current status, running then stopping",
			steps: []step{
				{request: cmdInterrogate, want: []svcStatus{running}},
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{request: cmdInterrogate, want: []svcStatus{stopPending(1)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "a long stop reports progress on every tick",
			steps: []step{
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{tick: true, want: []svcStatus{stopPending(2)}},
				{tick: true, want: []svcStatus{stopPending(3)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "a second stop while stopping is answered, not acted on",
			steps: []step{
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "requests the agent does not accept are ignored",
			steps: []step{
				{request: 2 /* pause */},
				{request: cmdInterrogate, want: []svcStatus{running}},
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{finish: code(0)},
			},
			wantCancelled: true,
		},
		{
			name: "exit status 3 after a self-update ends the service with 3, for the SCM to restart it",
			steps: []step{
				{finish: code(3), want: []svcStatus{stopPending(0)}},
			},
			wantCode: 3,
		},
		{
			name: "an agent that fails on its own ends the service with its status",
			steps: []step{
				{request: cmdInterrogate, want: []svcStatus{running}},
				{finish: code(1), want: []svcStatus{stopPending(0)}},
			},
			wantCode: 1,
		},
		{
			name: "an agent that fails while stopping keeps its status",
			steps: []step{
				{request: cmdStop, want: []svcStatus{stopPending(1)}},
				{finish: code(1)},
			},
			wantCancelled: true,
			wantCode:      1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requests := make(chan changeRequest)
			statuses := make(chan svcStatus)
			ticks := make(chan time.Time)
			finish := make(chan int)
			cancelled := make(chan bool, 1)
			run := func(ctx context.Context) int {
				c := <-finish
				cancelled <- ctx.Err() != nil
				return c
			}
			result := make(chan int, 1)
			go func() {
				result <- control(context.Background(), run, requests, func(s svcStatus) { statuses <- s }, ticks)
			}()
			expect := func(want []svcStatus) {
				t.Helper()
				var got []svcStatus
				for range want {
					select {
					case s := <-statuses:
						got = append(got, s)
					case <-time.After(10 * time.Second):
						t.Fatalf("no status reported; got %+v, want %+v", got, want)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("statuses (-want +got):\n%s", diff)
				}
			}
			send := func(what string, ch func() bool) {
				t.Helper()
				// The handler reads requests only between reports, so a
				// send that blocks for long means it stopped reading.
				if !ch() {
					t.Fatalf("the handler did not take the %s", what)
				}
			}
			expect([]svcStatus{startPending, running})
			for _, st := range tt.steps {
				switch {
				case st.tick:
					send("tick", func() bool {
						select {
						case ticks <- time.Time{}:
							return true
						case <-time.After(10 * time.Second):
							return false
						}
					})
				case st.finish != nil:
					finish <- *st.finish
				default:
					send("request", func() bool {
						select {
						case requests <- changeRequest{Cmd: st.request}:
							return true
						case <-time.After(10 * time.Second):
							return false
						}
					})
				}
				expect(st.want)
			}
			var got int
			select {
			case got = <-result:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler did not return after the agent did")
			}
			if got != tt.wantCode {
				t.Errorf("exit status %d, want %d", got, tt.wantCode)
			}
			if c := <-cancelled; c != tt.wantCancelled {
				t.Errorf("agent's context cancelled: %v, want %v", c, tt.wantCancelled)
			}
			select {
			case s := <-statuses:
				t.Errorf("status %+v reported after the handler returned", s)
			default:
			}
		})
	}
}
