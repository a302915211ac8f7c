//go:build !windows

package service

import (
	"bytes"
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// TestRunServiceStopsOnSIGTERM: systemd and launchd stop the agent with
// SIGTERM; RunService turns it into the end of run's context and returns
// run's exit status.
func TestRunServiceStopsOnSIGTERM(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	code := RunService("patch-agent", func(ctx context.Context, l *slog.Logger) int {
		l.Info("running")
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Error(err)
			return 1
		}
		select {
		case <-ctx.Done():
			return 3
		case <-time.After(time.Minute):
			t.Error("SIGTERM did not cancel the context")
			return 1
		}
	}, log)
	if code != 3 {
		t.Errorf("RunService returned %d, want run's 3", code)
	}
	if !bytes.Contains(logs.Bytes(), []byte("msg=running")) {
		t.Errorf("run did not log with the logger given: %q", logs.String())
	}
}
