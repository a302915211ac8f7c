package reconciler

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// This file holds the log lines an operator tails (`journalctl -u patchd
// -p warning`) to see that a rollout needs a person: a halt, its resume,
// a refused revision, a failed install. They are WARN, with the client,
// ring and update as attributes, and their values are bounded: an
// update id or error text from an endpoint is cut at maxLogText bytes
// (slog's handlers quote it), and a list at maxLogItems entries.

const (
	// maxLogText bounds a text attribute (an error, a reason).
	maxLogText = 256
	// maxLogItems bounds the lines logged for one event (halts changed by
	// one re-plan, failed updates of one job) and the entries of a list
	// attribute (a refused revision's problems).
	maxLogItems = 20
)

// logHaltChanges logs, at WARN, each rollout of client that halted or
// resumed between the halts before and after a re-plan at revision: a
// halt with its reason, a resume (a resume entry forgave the failures,
// or the revision no longer asks for the update) without one. Past
// maxLogItems lines, one more says how many changes went unlogged.
func logHaltChanges(log *slog.Logger, client, revision string, before, after []protocol.Halt) {
	key := func(h protocol.Halt) string { return h.Ring + "\x00" + h.Update }
	was := make(map[string]bool, len(before))
	for _, h := range before {
		was[key(h)] = true
	}
	now := make(map[string]bool, len(after))
	logged, skipped := 0, 0
	line := func(msg string, h protocol.Halt, args ...any) {
		if logged == maxLogItems {
			skipped++
			return
		}
		logged++
		log.Warn(msg, append([]any{"client", client, "ring", bounded(h.Ring), "update", bounded(h.Update), "revision", revision}, args...)...)
	}
	for _, h := range after {
		now[key(h)] = true
		if !was[key(h)] {
			line("rollout halted: later rings get no job for the update until a commit resumes it", h, "reason", bounded(h.Reason))
		}
	}
	for _, h := range before {
		if !now[key(h)] {
			line("rollout resumed: the update is no longer halted", h)
		}
	}
	if skipped > 0 {
		log.Warn("more rollouts halted or resumed", "client", client, "revision", revision, "unlogged", skipped)
	}
}

// logJobResults logs the results of one job of client's endpoint in
// ring that need a person's eye: each failed install at WARN with its
// error, a job the agent refused at WARN, an install the agent was
// interrupted in at INFO (the next inventory decides it). Succeeded
// updates are not logged. Past maxLogItems lines, one more counts the
// rest.
func logJobResults(ctx context.Context, log *slog.Logger, client, endpoint, job, ring string, results []store.UpdateResult) {
	logged, skipped := 0, 0
	for _, r := range results {
		var level slog.Level
		var msg string
		switch r.Result {
		case protocol.ResultFailed:
			level, msg = slog.LevelWarn, "install failed"
		case protocol.ResultRefused:
			level, msg = slog.LevelWarn, "job refused by the agent"
		case protocol.ResultHookFailed:
			level, msg = slog.LevelWarn, "pre script failed; the install was skipped"
		case protocol.ResultDeferredByGuard:
			level, msg = slog.LevelInfo, "job deferred: a guarded process kept running; retried in the next window"
		case protocol.ResultUnknown:
			level, msg = slog.LevelInfo, "install interrupted (the agent stopped); its next inventory shows whether it went in"
		default:
			continue
		}
		if logged == maxLogItems {
			skipped++
			continue
		}
		logged++
		args := []any{"client", client, "ring", bounded(ring), "update", bounded(r.Update), "endpoint", bounded(endpoint), "job", bounded(job)}
		if r.Error != "" {
			args = append(args, "err", bounded(r.Error))
		}
		log.Log(ctx, level, msg, args...)
	}
	if skipped > 0 {
		log.Warn("more updates of the job failed, were refused or interrupted", "client", client, "ring", bounded(ring), "endpoint", bounded(endpoint), "job", bounded(job), "unlogged", skipped)
	}
}

// logRefused logs a refused revision at WARN: the revision, the client
// ("" for the whole fleet), the reason and the first problems. msg says
// what patchd does about it.
func logRefused(log *slog.Logger, msg, revision, client, reason string, problems []string) {
	args := []any{"revision", revision}
	if client != "" {
		args = append(args, "client", client)
	}
	args = append(args, "reason", reason, "problems", boundedList(problems))
	log.Warn(msg, args...)
}

// bounded cuts s to maxLogText bytes, on a rune boundary, marking the
// cut.
func bounded(s string) string {
	if len(s) <= maxLogText {
		return s
	}
	cut := maxLogText
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// boundedList is list with each entry bounded, cut to maxLogItems
// entries and a last one saying how many more there were.
func boundedList(list []string) []string {
	n := min(len(list), maxLogItems)
	out := make([]string, 0, n+1)
	for _, s := range list[:n] {
		out = append(out, bounded(s))
	}
	if more := len(list) - n; more > 0 {
		out = append(out, fmt.Sprintf("and %d more", more))
	}
	return out
}
