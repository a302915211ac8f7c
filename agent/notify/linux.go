package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/patchline/patchline/agent/backend/run"
)

// Linux reaches desktop users through notify-send on their session bus
// and everyone else logged in through wall.
type Linux struct {
	Run run.Runner
	// RuntimeDir is where the users' runtime directories are; "" means
	// /run/user.
	RuntimeDir string
	// LookupUser names the user with a uid, for the users found in
	// RuntimeDir when loginctl cannot list them; nil means os/user.
	LookupUser func(uid string) (name string, err error)
}

// linuxUser is one user logged in.
type linuxUser struct {
	uid  int
	name string
}

// bus is the user's session bus socket, or "" when there is none (no
// desktop session).
func (l *Linux) bus(u linuxUser) string {
	p := filepath.Join(l.runtimeDir(), strconv.Itoa(u.uid), "bus")
	if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return ""
	}
	return p
}

func (l *Linux) runtimeDir() string {
	if l.RuntimeDir == "" {
		return "/run/user"
	}
	return l.RuntimeDir
}

// users lists the users logged in, from loginctl, or where systemd's
// loginctl cannot answer (no systemd), from the runtime directories
// under RuntimeDir that logind or pam_systemd made for them.
func (l *Linux) users(ctx context.Context) ([]linuxUser, error) {
	out, stderr, err := l.Run.Run(ctx, "loginctl", []string{"list-users", "--no-legend", "--no-pager"}, nil)
	if err == nil {
		return parseLoginctlUsers(out)
	}
	loginctlErr := fmt.Errorf("loginctl list-users: %w: %s", err, bytes.TrimSpace(stderr))
	entries, derr := os.ReadDir(l.runtimeDir())
	if derr != nil {
		return nil, errors.Join(loginctlErr, derr)
	}
	lookup := l.LookupUser
	if lookup == nil {
		lookup = func(uid string) (string, error) {
			u, err := user.LookupId(uid)
			if err != nil {
				return "", err
			}
			return u.Username, nil
		}
	}
	var us []linuxUser
	for _, e := range entries {
		uid, err := strconv.Atoi(e.Name())
		if err != nil || uid <= 0 || !e.IsDir() {
			continue
		}
		name, err := lookup(e.Name())
		if err != nil {
			continue // a directory left by a user since removed
		}
		us = append(us, linuxUser{uid: uid, name: name})
	}
	return us, nil
}

// parseLoginctlUsers reads "UID USER [LINGER STATE]" lines.
func parseLoginctlUsers(out []byte) ([]linuxUser, error) {
	var us []linuxUser
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		uid, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 2 || uid < 0 {
			return nil, fmt.Errorf("loginctl list-users: unexpected line %q", line)
		}
		if uid == 0 {
			continue // root's sessions are the agent's own kind, not a person at a desk
		}
		us = append(us, linuxUser{uid: uid, name: f[1]})
	}
	return us, nil
}

// sessions splits the users into those with a desktop session bus and
// those without.
func (l *Linux) sessions(ctx context.Context) (desktop []linuxUser, buses []string, others []linuxUser, err error) {
	us, err := l.users(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, u := range us {
		if b := l.bus(u); b != "" {
			desktop, buses = append(desktop, u), append(buses, b)
		} else {
			others = append(others, u)
		}
	}
	return desktop, buses, others, nil
}

// asUser runs notify-send as user u on bus.
func (l *Linux) notifySend(ctx context.Context, u linuxUser, bus string, args ...string) ([]byte, []byte, error) {
	argv := append([]string{"-u", u.name, "--", "env", "DBUS_SESSION_BUS_ADDRESS=unix:path=" + bus,
		"notify-send", "--app-name=Patchline", "--urgency=critical"}, args...)
	return l.Run.Run(ctx, "runuser", argv, nil)
}

func (l *Linux) wall(ctx context.Context, title, message string) error {
	if _, stderr, err := l.Run.Run(ctx, "wall", []string{title + ": " + message}, nil); err != nil {
		return fmt.Errorf("wall: %w: %s", err, bytes.TrimSpace(stderr))
	}
	return nil
}

// Notify shows a notification on every desktop and the text through wall
// to users without one.
func (l *Linux) Notify(ctx context.Context, title, message string) error {
	desktop, buses, others, err := l.sessions(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i, u := range desktop {
		if _, stderr, err := l.notifySend(ctx, u, buses[i], "--", title, message); err != nil {
			errs = append(errs, fmt.Errorf("notify-send for %s: %w: %s", u.name, err, bytes.TrimSpace(stderr)))
		}
	}
	if len(others) > 0 {
		errs = append(errs, l.wall(ctx, title, message))
	}
	return errors.Join(errs...)
}

// Ask asks every desktop user at once and waits for their answers; users
// without a desktop are told through wall, which takes no answer.
func (l *Linux) Ask(ctx context.Context, p Prompt) (Answer, error) {
	desktop, buses, others, err := l.sessions(ctx)
	if err != nil {
		return NoAnswer, err
	}
	if len(desktop) == 0 && len(others) == 0 {
		return NoUsers, nil
	}
	var errs []error
	if len(others) > 0 {
		errs = append(errs, l.wall(ctx, p.Title, p.Message))
	}
	answers := make([]Answer, len(desktop))
	errsOf := make([]error, len(desktop))
	var wg sync.WaitGroup
	for i, u := range desktop {
		wg.Go(func() {
			pctx, cancel := withTimeout(ctx, p.Timeout)
			defer cancel()
			out, stderr, err := l.notifySend(pctx, u, buses[i], "--wait",
				"--expire-time="+strconv.FormatInt(p.Timeout.Milliseconds(), 10),
				"--action=postpone="+p.PostponeLabel, "--action=now="+p.NowLabel, "--", p.Title, p.Message)
			switch {
			case pctx.Err() != nil && ctx.Err() == nil:
				answers[i] = NoAnswer // the notification server kept it open past the timeout
			case err != nil:
				answers[i], errsOf[i] = NoAnswer, fmt.Errorf("notify-send for %s: %w: %s", u.name, err, bytes.TrimSpace(stderr))
			default:
				answers[i] = parseNotifySend(out)
			}
		})
	}
	wg.Wait()
	errs = append(errs, errsOf...)
	return combine(answers), errors.Join(errs...)
}

// parseNotifySend reads what notify-send --wait printed: the key of the
// action chosen, nothing when the notification closed or expired.
func parseNotifySend(out []byte) Answer {
	switch strings.TrimSpace(string(out)) {
	case "postpone":
		return Postpone
	case "now":
		return RestartNow
	default:
		return NoAnswer
	}
}
