package notify

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/patchline/patchline/agent/backend/run"
)

// MacOS reaches the console user through osascript, run in that user's
// login session (launchctl asuser) as that user (sudo -u).
type MacOS struct {
	Run run.Runner
}

// consoleUser returns the user owning the console, and ok false when
// nobody is logged in (the login window owns it as root).
func (m *MacOS) consoleUser(ctx context.Context) (name string, uid int, ok bool, err error) {
	out, stderr, err := m.Run.Run(ctx, "stat", []string{"-f", "%Su", "/dev/console"}, nil)
	if err != nil {
		return "", 0, false, fmt.Errorf("console user: stat: %w: %s", err, bytes.TrimSpace(stderr))
	}
	name = strings.TrimSpace(string(out))
	if name == "" || name == "root" || name == "loginwindow" {
		return "", 0, false, nil
	}
	out, stderr, err = m.Run.Run(ctx, "id", []string{"-u", "--", name}, nil)
	if err != nil {
		return "", 0, false, fmt.Errorf("console user %s: id: %w: %s", name, err, bytes.TrimSpace(stderr))
	}
	uid, err = strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return "", 0, false, fmt.Errorf("console user %s: id printed %q", name, out)
	}
	return name, uid, true, nil
}

func (m *MacOS) osascript(ctx context.Context, name string, uid int, script string) ([]byte, []byte, error) {
	return m.Run.Run(ctx, "launchctl", []string{"asuser", strconv.Itoa(uid), "sudo", "-u", name, "--", "osascript", "-e", script}, nil)
}

// appleString quotes s as an AppleScript string literal.
func appleString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Notify shows a notification to the console user, if any.
func (m *MacOS) Notify(ctx context.Context, title, message string) error {
	name, uid, ok, err := m.consoleUser(ctx)
	if err != nil || !ok {
		return err
	}
	script := "display notification " + appleString(message) + " with title " + appleString(title)
	if _, stderr, err := m.osascript(ctx, name, uid, script); err != nil {
		return fmt.Errorf("osascript for %s: %w: %s", name, err, bytes.TrimSpace(stderr))
	}
	return nil
}

// Ask shows a dialog with the two choices to the console user; it gives up
// after the prompt's timeout.
func (m *MacOS) Ask(ctx context.Context, p Prompt) (Answer, error) {
	name, uid, ok, err := m.consoleUser(ctx)
	if err != nil {
		return NoAnswer, err
	}
	if !ok {
		return NoUsers, nil
	}
	secs := int(p.Timeout.Seconds())
	if secs <= 0 {
		secs = 300
	}
	script := fmt.Sprintf("display dialog %s with title %s buttons {%s, %s} default button %s giving up after %d",
		appleString(p.Message), appleString(p.Title), appleString(p.PostponeLabel), appleString(p.NowLabel), appleString(p.PostponeLabel), secs)
	pctx, cancel := withTimeout(ctx, p.Timeout)
	defer cancel()
	out, stderr, err := m.osascript(pctx, name, uid, script)
	if err != nil {
		if bytes.Contains(stderr, []byte("(-128)")) {
			return NoAnswer, nil // the dialog was cancelled
		}
		if pctx.Err() != nil && ctx.Err() == nil {
			return NoAnswer, nil
		}
		return NoAnswer, fmt.Errorf("osascript for %s: %w: %s", name, err, bytes.TrimSpace(stderr))
	}
	return parseDialog(out, p), nil
}

// parseDialog reads osascript's "button returned:Restart now, gave
// up:false".
func parseDialog(out []byte, p Prompt) Answer {
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "gave up:true") {
		return NoAnswer
	}
	button, ok := strings.CutPrefix(s, "button returned:")
	if !ok {
		return NoAnswer
	}
	if i := strings.LastIndex(button, ", gave up:"); i >= 0 {
		button = button[:i]
	}
	switch button {
	case p.PostponeLabel:
		return Postpone
	case p.NowLabel:
		return RestartNow
	}
	return NoAnswer
}
