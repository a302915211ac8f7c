package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/patchline/patchline/agent/backend/run"
)

// ErrNoUser is returned by a SessionRunner when nobody is logged in at
// the console.
var ErrNoUser = errors.New("nobody is logged in at the console")

// SessionRunner runs a command in the session of the user logged in at
// the console, as that user, waits for it and returns its exit status.
// The agent runs as a service in session 0, which cannot show a window on
// a user's desktop; a process started in the user's session can.
type SessionRunner func(ctx context.Context, name string, args []string) (exitCode uint32, err error)

// Windows asks the console user with a Yes/No dialog (WScript.Shell's
// Popup, which gives up after the prompt's timeout) run by PowerShell in
// the user's session through InSession, and shows notices in every
// session with msg.exe (msg * /TIME:n), which reaches users signed in over
// Remote Desktop too but returns no choice. Without a console user, or
// when the dialog cannot be started, a prompt is shown as a msg notice
// and counts as unanswered. (msg.exe is part of Windows Pro, Enterprise
// and Server; on Home editions notices fail and the schedule still holds.)
type Windows struct {
	Run run.Runner
	// InSession runs the dialog in the console user's session; nil means
	// prompts are notices only. ForOS sets the real one on Windows.
	InSession SessionRunner
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

// Popup's answers (the IDYES and IDNO of a Yes/No box, -1 when it timed
// out).
const (
	popupYes = 6
	popupNo  = 7
)

// Ask shows the Yes/No dialog to the console user: Yes restarts now, No
// postpones. Without a console user or a dialog it falls back to a
// notice.
func (w *Windows) Ask(ctx context.Context, p Prompt) (Answer, error) {
	secs := int(p.Timeout.Seconds())
	if secs <= 0 {
		secs = msgSeconds
	}
	var dialogErr error
	if w.InSession != nil {
		pctx, cancel := withTimeout(ctx, p.Timeout)
		name, args := powerShell(PopupScript(p, secs))
		code, err := w.InSession(pctx, name, args)
		cancel()
		switch {
		case err == nil && code == popupYes:
			return RestartNow, nil
		case err == nil && code == popupNo:
			return Postpone, nil
		case err == nil:
			return NoAnswer, nil
		case ctx.Err() != nil:
			return NoAnswer, ctx.Err()
		case !errors.Is(err, ErrNoUser):
			dialogErr = fmt.Errorf("dialog in the console session: %w", err)
		}
	}
	return NoAnswer, errors.Join(dialogErr, w.msg(ctx, secs, p.Title, p.Message))
}

// PopupScript is the PowerShell script of a prompt's dialog: a Yes/No box,
// on top of other windows, giving up after secs seconds; its exit status
// is Popup's answer.
func PopupScript(p Prompt, secs int) string {
	text := p.Message + "\n\nYes: " + p.NowLabel + ". No: " + p.PostponeLabel + "."
	// 4: Yes and No buttons; 48: a warning icon; 4096: system modal, on top.
	return "$shell = New-Object -ComObject WScript.Shell\n" +
		"$answer = $shell.Popup(" + psString(text) + ", " + strconv.Itoa(secs) + ", " + psString(p.Title) + ", 4 + 48 + 4096)\n" +
		"exit $answer\n"
}

// psString quotes s as a PowerShell literal string (no expansion): in
// single quotes, each single quote (and its typographic forms, which
// PowerShell also reads as quotes) doubled; new lines joined back with
// "`n".
func psString(s string) string {
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		var b strings.Builder
		for _, r := range line {
			b.WriteRune(r)
			if r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201a' || r == '\u201b' {
				b.WriteRune(r)
			}
		}
		lines = append(lines, "'"+b.String()+"'")
	}
	return "(" + strings.Join(lines, " + \"`n\" + ") + ")"
}

// powerShell is the command line that runs script in Windows PowerShell,
// hidden, the script base64-encoded (-EncodedCommand) so that no quoting
// of the command line can change it.
func powerShell(script string) (string, []string) {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return "powershell.exe", []string{"-NoProfile", "-NonInteractive", "-WindowStyle", "Hidden", "-ExecutionPolicy", "Bypass",
		"-EncodedCommand", base64.StdEncoding.EncodeToString(b)}
}
