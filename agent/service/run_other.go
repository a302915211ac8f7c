//go:build !windows

package service

import (
	"context"
	"log/slog"
)

// RunService runs run until it returns and gives its exit status, with
// log and a context that an interrupt or SIGTERM cancels. (On Windows,
// under the SCM, it runs run as the service name.) systemd and launchd
// need nothing more: they stop the agent with SIGTERM and read its exit
// status.
func RunService(name string, run func(ctx context.Context, log *slog.Logger) int, log *slog.Logger) int {
	return runForeground(run, log)
}
