package notify

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/patchline/patchline/agent/backend/run"
)

// Windows shows text in every session with msg.exe. The agent runs as a
// service in session 0, which cannot show a window on a user's desktop;
// msg reaches the users' sessions but returns no choice. A prompt is
// therefore a notice on Windows: its answer is always NoAnswer, so each
// prompt uses a deferral and the restart comes when they run out or at the
// deadline. (msg.exe is part of Windows Pro, Enterprise and Server; on
// Home editions the notice fails and the schedule still holds.)
type Windows struct {
	Run run.Runner
}

// msgSeconds is how long a notice stays up when no timeout is given.
const msgSeconds = 300

func (w *Windows) msg(ctx context.Context, seconds int, title, message string) error {
	if seconds <= 0 {
		seconds = msgSeconds
	}
	_, stderr, err := w.Run.Run(ctx, "msg", []string{"*", "/TIME:" + strconv.Itoa(seconds), title + ": " + message}, nil)
	if err != nil {
		return fmt.Errorf("msg: %w: %s", err, bytes.TrimSpace(stderr))
	}
	return nil
}

// Notify shows the notice in every session.
func (w *Windows) Notify(ctx context.Context, title, message string) error {
	return w.msg(ctx, msgSeconds, title, message)
}

// Ask shows the prompt's text as a notice with the choices left out (the
// message says when the restart comes) and reports NoAnswer.
func (w *Windows) Ask(ctx context.Context, p Prompt) (Answer, error) {
	return NoAnswer, w.msg(ctx, int(p.Timeout.Seconds()), p.Title, p.Message)
}
