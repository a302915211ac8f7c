// Package notify tells the people logged in at an endpoint that it will
// restart, and asks them whether to postpone the restart, through the
// operating system's own means:
//
//   - Linux desktops: notify-send in each logged-in user's session (run as
//     that user through runuser, on the session bus at
//     /run/user/<uid>/bus), with "Postpone" and "Restart now" actions and
//     --wait, which prints the chosen action. Users come from loginctl
//     (or, without systemd, the runtime directories under /run/user);
//     those without a session bus (SSH, consoles) get the text through
//     wall.
//   - macOS: an osascript dialog run as the console user (launchctl asuser
//     <uid> sudo -u <user>), whose "button returned:" line is the answer.
//   - Windows: a Yes/No dialog (PowerShell, WScript.Shell's Popup) started
//     in the console user's session as that user (WTSQueryUserToken,
//     CreateProcessAsUser), whose exit status is the answer; notices go
//     to every session with msg * /TIME:n, and so does a prompt when
//     nobody is at the console (a notice counts as unanswered).
//
// Every implementation builds command lines and runs them through a
// run.Runner, so tests record and replay them on any OS. The text shown is
// the caller's; the agent builds it from fixed sentences and policy values
// only, never from text an endpoint or a package reported.
package notify

import (
	"context"
	"time"

	"github.com/patchline/patchline/agent/backend/run"
)

// Answer is what the people at the endpoint made of a prompt.
type Answer string

const (
	// NoAnswer: shown, but not answered before the timeout (or dismissed,
	// or shown by a path that cannot take an answer).
	NoAnswer Answer = "no-answer"
	// Postpone: someone chose to postpone the restart.
	Postpone Answer = "postpone"
	// RestartNow: someone chose to restart now, and nobody postponed.
	RestartNow Answer = "restart-now"
	// NoUsers: nobody is logged in to be asked.
	NoUsers Answer = "no-users"
)

// Prompt is a question about a restart.
type Prompt struct {
	Title   string
	Message string
	// PostponeLabel and NowLabel label the two choices.
	PostponeLabel string
	NowLabel      string
	// Timeout is how long the prompt waits for an answer.
	Timeout time.Duration
}

// Notifier reaches the people logged in at an endpoint.
type Notifier interface {
	// Notify shows a notice to everyone logged in, without waiting for
	// anyone to read it.
	Notify(ctx context.Context, title, message string) error
	// Ask shows p to everyone logged in and waits up to p.Timeout. When
	// several are asked, one who postpones outweighs one who restarts.
	Ask(ctx context.Context, p Prompt) (Answer, error)
}

// ForOS returns the notifier for an operating system (runtime.GOOS
// spelling) running its commands through r.
func ForOS(goos string, r run.Runner) Notifier {
	switch goos {
	case "windows":
		return &Windows{Run: r, InSession: consoleSession}
	case "darwin":
		return &MacOS{Run: r}
	default:
		return &Linux{Run: r}
	}
}

// combine merges the answers of several people: a postponement wins, then
// a restart, then silence.
func combine(answers []Answer) Answer {
	best := NoAnswer
	rank := map[Answer]int{NoAnswer: 0, RestartNow: 1, Postpone: 2}
	for _, a := range answers {
		if rank[a] > rank[best] {
			best = a
		}
	}
	return best
}

// withTimeout bounds a prompt's command: its own timeout plus a grace for
// the tool to start and return.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = 5 * time.Minute
	}
	return context.WithTimeout(ctx, d+30*time.Second)
}
