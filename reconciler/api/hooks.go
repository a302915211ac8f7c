package api

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// newHookFailures is patchline_hook_failures_total{hook}: the job
// scripts (pre, post) that failed on endpoints; the log names the client,
// the endpoint and the script. A failed pre script
// already fails the job's updates (hook-failed); a failed post script
// leaves the updates installed and would otherwise pass unseen, though it
// may have left a line-of-business application stopped.
func newHookFailures() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "patchline_hook_failures_total",
		Help: "Job scripts that failed on endpoints, by hook (pre: the installs were skipped; post: the updates are installed, the script's work may not be done).",
	}, []string{"hook"})
}

// recordHooks logs and counts the failed scripts of a job's result; the
// result's text was checked by resultsOf.
func (s *Server) recordHooks(ctx context.Context, ep store.Enrollment, jobID string, hooks []protocol.HookResult) {
	for _, h := range hooks {
		if h.Error == "" {
			continue
		}
		s.hookFailures.WithLabelValues(h.Hook).Inc()
		s.log.LogAttrs(ctx, slog.LevelWarn, "job script failed on the endpoint",
			slog.String("client", ep.Client), slog.String("endpoint", ep.ID), slog.String("job", jobID),
			slog.String("hook", h.Hook), slog.String("script", h.Path), slog.Int("exitCode", h.ExitCode),
			slog.String("err", h.Error), slog.String("output", h.Output))
	}
}
