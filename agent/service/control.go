package service

import (
	"context"
	"time"
)

// The Windows SCM's vocabulary as plain Go, so that the control handler
// below is tested on every OS; run_windows.go converts to and from
// golang.org/x/sys/windows/svc (the values are Windows' own).
type (
	// svcState mirrors svc.State.
	svcState uint32
	// svcCmd mirrors svc.Cmd.
	svcCmd uint32
	// svcAccepted mirrors svc.Accepted.
	svcAccepted uint32
)

const (
	stateStopped         svcState = 1
	stateStartPending    svcState = 2
	stateStopPending     svcState = 3
	stateRunning         svcState = 4
	stateContinuePending svcState = 5
	statePausePending    svcState = 6
	statePaused          svcState = 7

	cmdStop        svcCmd = 1
	cmdInterrogate svcCmd = 4
	cmdShutdown    svcCmd = 5

	acceptStop     svcAccepted = 1
	acceptShutdown svcAccepted = 4
)

// String is the state as `service status` shows it.
func (s svcState) String() string {
	switch s {
	case stateStopped:
		return "stopped"
	case stateStartPending:
		return "start-pending"
	case stateStopPending:
		return "stop-pending"
	case stateRunning:
		return "running"
	case stateContinuePending:
		return "continue-pending"
	case statePausePending:
		return "pause-pending"
	case statePaused:
		return "paused"
	}
	return "unknown"
}

// svcStatus mirrors the fields of svc.Status a service reports.
type svcStatus struct {
	State      svcState
	Accepts    svcAccepted
	CheckPoint uint32
	WaitHint   uint32
}

// changeRequest mirrors the field of svc.ChangeRequest the handler reads.
type changeRequest struct{ Cmd svcCmd }

// stopWaitHint is how long the SCM is told to wait for the next sign of
// progress while the agent stops; a tick every stopTick (less than the
// hint) reports one.
const (
	stopWaitHint = 10 * time.Second
	stopTick     = 5 * time.Second
)

// control is a service's life under the SCM: it reports start-pending,
// starts run, reports running (accepting stop and shutdown), and answers
// requests until run returns. Stop and shutdown cancel run's context and
// report stop-pending, then a growing checkpoint on each tick until run
// has returned; interrogate answers the last status reported; other
// requests are ignored. It returns run's exit status, with which the
// service stops (non-zero makes the SCM apply its recovery actions).
func control(ctx context.Context, run func(context.Context) int, requests <-chan changeRequest, report func(svcStatus), ticks <-chan time.Time) int {
	current := svcStatus{State: stateStartPending}
	set := func(s svcStatus) {
		current = s
		report(s)
	}
	set(current)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx) }()
	set(svcStatus{State: stateRunning, Accepts: acceptStop | acceptShutdown})
	stopping := false
	// ticks is read only while stopping; a nil channel blocks for ever.
	var progress <-chan time.Time
	for {
		select {
		case code := <-done:
			if !stopping {
				set(svcStatus{State: stateStopPending, WaitHint: uint32(stopWaitHint / time.Millisecond)})
			}
			return code
		case <-progress:
			set(svcStatus{State: stateStopPending, CheckPoint: current.CheckPoint + 1, WaitHint: uint32(stopWaitHint / time.Millisecond)})
		case req, ok := <-requests:
			if !ok {
				requests = nil
				continue
			}
			switch req.Cmd {
			case cmdInterrogate:
				report(current)
			case cmdStop, cmdShutdown:
				if stopping {
					report(current)
					continue
				}
				stopping = true
				cancel()
				progress = ticks
				set(svcStatus{State: stateStopPending, CheckPoint: 1, WaitHint: uint32(stopWaitHint / time.Millisecond)})
			}
		}
	}
}
