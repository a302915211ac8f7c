//go:build windows

package service

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// RunService runs run until it returns and gives its exit status. When
// the Windows SCM started this process, run runs as the service name:
// stop and shutdown requests cancel its context, its exit status becomes
// the service's (non-zero makes the SCM restart it), and it logs to the
// Windows event log under the source name (which `service install`
// registers). Otherwise run runs in the foreground with log, its context
// cancelled by an interrupt.
func RunService(name string, run func(ctx context.Context, log *slog.Logger) int, log *slog.Logger) int {
	isService, err := svc.IsWindowsService()
	if err != nil {
		log.Warn("cannot tell whether the service control manager started patch-agent; running in the foreground", "err", err)
	}
	if !isService {
		return runForeground(run, log)
	}
	if elog, err := eventlog.Open(name); err == nil {
		defer elog.Close()
		level := slog.LevelInfo
		if log.Enabled(context.Background(), slog.LevelDebug) {
			level = slog.LevelDebug
		}
		log = slog.New(newEventHandler(elog, level))
	}
	h := &scmHandler{run: func(ctx context.Context) int { return run(ctx, log) }}
	if err := svc.Run(name, h); err != nil {
		log.Error("run as a Windows service", "service", name, "err", err)
		return 1
	}
	return h.code
}

// scmHandler adapts control to svc.Handler.
type scmHandler struct {
	run func(context.Context) int
	// code is run's exit status, set before Execute returns.
	code int
}

func (h *scmHandler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	requests := make(chan changeRequest)
	done := make(chan struct{})
	// Forwards the SCM's requests until control returns.
	go func() {
		for {
			select {
			case c, ok := <-r:
				if !ok {
					return
				}
				select {
				case requests <- changeRequest{Cmd: svcCmd(c.Cmd)}:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	ticker := time.NewTicker(stopTick)
	defer ticker.Stop()
	h.code = control(context.Background(), h.run, requests, func(st svcStatus) {
		s <- svc.Status{State: svc.State(st.State), Accepts: svc.Accepted(st.Accepts), CheckPoint: st.CheckPoint, WaitHint: st.WaitHint}
	}, ticker.C)
	close(done)
	if h.code == 0 {
		return false, 0
	}
	return true, uint32(h.code)
}
