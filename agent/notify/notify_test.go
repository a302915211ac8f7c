package notify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/run/runtest"
)

var prompt = Prompt{
	Title:         "Restart needed",
	Message:       `Updates need a restart. This computer restarts at 02:00 at the latest.`,
	PostponeLabel: "Postpone 4h",
	NowLabel:      "Restart now",
	Timeout:       5 * time.Minute,
}

// busDir makes a runtime directory in which the users with these uids have
// a session bus (a real unix socket, as the desktop session makes).
func busDir(t *testing.T, uids ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rt") // short: a socket path is at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, uid := range uids {
		if err := os.MkdirAll(filepath.Join(dir, uid), 0o700); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", filepath.Join(dir, uid, "bus"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	// A directory without a bus: a user logged in over SSH.
	if err := os.MkdirAll(filepath.Join(dir, "1003"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

const loginctlUsers = "list-users --no-legend --no-pager"

func notifySendCmd(dir, uid, user string) string {
	return "runuser -u " + user + " -- env DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(dir, uid, "bus") +
		" notify-send --app-name=Patchline --urgency=critical --wait --expire-time=300000 --action=postpone=Postpone 4h --action=now=Restart now -- " +
		prompt.Title + " " + prompt.Message
}

func TestLinuxAsk(t *testing.T) {
	users := runtest.File(t, "testdata", "loginctl-list-users.txt")
	tests := []struct {
		name    string
		users   string
		buses   []string
		answers map[string]string // user → what notify-send printed
		want    Answer
		wantRan []string
	}{
		{name: "one desktop user postpones", users: "1000 alice no active\n", buses: []string{"1000"},
			answers: map[string]string{"alice": "postpone\n"}, want: Postpone},
		{name: "one desktop user restarts now", users: "1000 alice no active\n", buses: []string{"1000"},
			answers: map[string]string{"alice": "now\n"}, want: RestartNow},
		{name: "the notification expires", users: "1000 alice no active\n", buses: []string{"1000"},
			answers: map[string]string{"alice": ""}, want: NoAnswer},
		{name: "two desktops: a postponement outweighs a restart, and the SSH user gets wall", users: users, buses: []string{"1000", "1002"},
			answers: map[string]string{"alice": "now\n", "carol": "postpone\n"}, want: Postpone,
			wantRan: []string{"wall " + prompt.Title + ": " + prompt.Message}},
		{name: "only an SSH user: wall, no answer", users: "1003 dave no active\n", want: NoAnswer,
			wantRan: []string{"wall " + prompt.Title + ": " + prompt.Message}},
		{name: "nobody logged in", users: "", want: NoUsers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := busDir(t, tt.buses...)
			calls := []runtest.Call{{Cmd: "loginctl " + loginctlUsers, Stdout: tt.users},
				{Cmd: "wall " + prompt.Title + ": " + prompt.Message}}
			uids := map[string]string{"alice": "1000", "carol": "1002"}
			for user, out := range tt.answers {
				calls = append(calls, runtest.Call{Cmd: notifySendCmd(dir, uids[user], user), Stdout: out})
			}
			r := &runtest.Replay{T: t, Calls: calls}
			got, err := (&Linux{Run: r, RuntimeDir: dir}).Ask(t.Context(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("answer = %q, want %q", got, tt.want)
			}
			var wall []string
			asked := 0
			for _, c := range r.Ran() {
				if strings.HasPrefix(c, "wall ") {
					wall = append(wall, c)
				}
				if strings.HasPrefix(c, "runuser ") {
					asked++
				}
			}
			if d := cmp.Diff(tt.wantRan, wall); d != "" {
				t.Errorf("wall (-want +got):\n%s", d)
			}
			if asked != len(tt.answers) {
				t.Errorf("asked %d desktop users, want %d: %q", asked, len(tt.answers), r.Ran())
			}
		})
	}
}

// TestLinuxWithoutLoginctl finds the users by their runtime directories
// when loginctl cannot answer (no systemd).
func TestLinuxWithoutLoginctl(t *testing.T) {
	dir := busDir(t, "1000")
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "loginctl " + loginctlUsers, Exit: 1, Stderr: "System has not been booted with systemd as init system (PID 1). Can't operate.\n"},
		{Cmd: notifySendCmd(dir, "1000", "alice"), Stdout: "now\n"},
		{Cmd: "wall " + prompt.Title + ": " + prompt.Message},
	}}
	names := map[string]string{"1000": "alice", "1003": "dave"}
	l := &Linux{Run: r, RuntimeDir: dir, LookupUser: func(uid string) (string, error) {
		if n, ok := names[uid]; ok {
			return n, nil
		}
		return "", errors.New("unknown uid")
	}}
	got, err := l.Ask(t.Context(), prompt)
	if err != nil || got != RestartNow {
		t.Errorf("Ask = %q, %v; want restart-now", got, err)
	}
	if n := len(r.Ran()); n != 3 {
		t.Errorf("ran %q; want loginctl, wall for dave and notify-send for alice", r.Ran())
	}
}

func TestLinuxNotify(t *testing.T) {
	dir := busDir(t, "1000")
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "loginctl " + loginctlUsers, Stdout: "1000 alice no active\n1003 dave no active\n"},
		{Cmd: "runuser -u alice -- env DBUS_SESSION_BUS_ADDRESS=unix:path=" + filepath.Join(dir, "1000", "bus") +
			" notify-send --app-name=Patchline --urgency=critical -- Restart soon This computer restarts in 15m0s."},
		{Cmd: "wall Restart soon: This computer restarts in 15m0s."},
	}}
	if err := (&Linux{Run: r, RuntimeDir: dir}).Notify(t.Context(), "Restart soon", "This computer restarts in 15m0s."); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Ran()); n != 3 {
		t.Errorf("ran %q, want loginctl, notify-send and wall", r.Ran())
	}
}

func TestMacOSAsk(t *testing.T) {
	dialog := `display dialog "Updates need a restart. This computer restarts at 02:00 at the latest." with title "Restart needed" ` +
		`buttons {"Postpone 4h", "Restart now"} default button "Postpone 4h" giving up after 300`
	osascript := "launchctl asuser 501 sudo -u alice -- osascript -e " + dialog
	tests := []struct {
		name    string
		console string
		out     string
		stderr  string
		exit    int
		want    Answer
	}{
		{name: "postpone", console: "alice\n", out: runtest.File(t, "testdata", "osascript-postpone.txt"), want: Postpone},
		{name: "restart now", console: "alice\n", out: runtest.File(t, "testdata", "osascript-now.txt"), want: RestartNow},
		{name: "gave up", console: "alice\n", out: runtest.File(t, "testdata", "osascript-gave-up.txt"), want: NoAnswer},
		{name: "cancelled", console: "alice\n", stderr: "execution error: User canceled. (-128)\n", exit: 1, want: NoAnswer},
		{name: "login window", console: "root\n", want: NoUsers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runtest.Replay{T: t, Calls: []runtest.Call{
				{Cmd: "stat -f %Su /dev/console", Stdout: tt.console},
				{Cmd: "id -u -- alice", Stdout: "501\n"},
				{Cmd: osascript, Stdout: tt.out, Stderr: tt.stderr, Exit: tt.exit},
			}}
			got, err := (&MacOS{Run: r}).Ask(t.Context(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("answer = %q, want %q (ran %q)", got, tt.want, r.Ran())
			}
		})
	}
}

func TestMacOSQuotesTheText(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{
		{Cmd: "stat -f %Su /dev/console", Stdout: "alice\n"},
		{Cmd: "id -u -- alice", Stdout: "501\n"},
		{Cmd: `launchctl asuser 501 sudo -u alice -- osascript -e display notification "say \"hi\" \\ bye" with title "T"`},
	}}
	if err := (&MacOS{Run: r}).Notify(t.Context(), "T", `say "hi" \ bye`); err != nil {
		t.Fatal(err)
	}
}

func TestWindowsPromptIsANotice(t *testing.T) {
	r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: "msg * /TIME:300 " + prompt.Title + ": " + prompt.Message}}}
	got, err := (&Windows{Run: r}).Ask(t.Context(), prompt)
	if err != nil || got != NoAnswer {
		t.Errorf("Ask = %q, %v; want no answer", got, err)
	}
	r = &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: "msg * /TIME:300 " + prompt.Title + ": " + prompt.Message, Exit: 1,
		Stderr: "Error 1722 getting session names\n"}}}
	if _, err := (&Windows{Run: r}).Ask(context.Background(), prompt); err == nil || !strings.Contains(err.Error(), "Error 1722") {
		t.Errorf("a failed msg: %v, want its error", err)
	}
}

func TestForOS(t *testing.T) {
	for goos, want := range map[string]string{"windows": "*notify.Windows", "darwin": "*notify.MacOS", "linux": "*notify.Linux", "freebsd": "*notify.Linux"} {
		if got := fmt.Sprintf("%T", ForOS(goos, nil)); got != want {
			t.Errorf("ForOS(%s) = %s, want %s", goos, got, want)
		}
	}
}

// decodeScript reads the script out of a powershell.exe -EncodedCommand
// command line.
func decodeScript(t *testing.T, args []string) string {
	t.Helper()
	if len(args) < 2 || args[len(args)-2] != "-EncodedCommand" {
		t.Fatalf("not an encoded command: %q", args)
	}
	b, err := base64.StdEncoding.DecodeString(args[len(args)-1])
	if err != nil {
		t.Fatal(err)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u))
}

func TestWindowsDialog(t *testing.T) {
	wantScript := "$shell = New-Object -ComObject WScript.Shell\n" +
		"$answer = $shell.Popup(('Updates need a restart. This computer restarts at 02:00 at the latest.' + \"`n\" + '' + \"`n\" + 'Yes: Restart now. No: Postpone 4h.'), 300, ('Restart needed'), 4 + 48 + 4096)\n" +
		"exit $answer\n"
	msg := "msg * /TIME:300 " + prompt.Title + ": " + prompt.Message
	tests := []struct {
		name    string
		code    uint32
		err     error
		want    Answer
		wantMsg bool
		wantErr string
	}{
		{name: "Yes restarts now", code: 6, want: RestartNow},
		{name: "No postpones", code: 7, want: Postpone},
		{name: "the dialog gave up", code: 0xFFFFFFFF, want: NoAnswer},
		{name: "nobody at the console: a notice to every session", err: ErrNoUser, want: NoAnswer, wantMsg: true},
		{name: "the dialog cannot start: a notice, and the error", err: errors.New("access denied"), want: NoAnswer, wantMsg: true,
			wantErr: "dialog in the console session: access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &runtest.Replay{T: t, Calls: []runtest.Call{{Cmd: msg}}}
			var ran []string
			w := &Windows{Run: r, InSession: func(_ context.Context, name string, args []string) (uint32, error) {
				ran = append([]string{name}, args...)
				if got := decodeScript(t, args); got != wantScript {
					t.Errorf("script:\n%s\nwant:\n%s", got, wantScript)
				}
				return tt.code, tt.err
			}}
			got, err := w.Ask(t.Context(), prompt)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Ask = %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
			if ran[0] != "powershell.exe" || !slices.Contains(ran, "Hidden") {
				t.Errorf("dialog command %q", ran[:len(ran)-1])
			}
			if sent := len(r.Ran()) > 0; sent != tt.wantMsg {
				t.Errorf("msg sent: %v, want %v", sent, tt.wantMsg)
			}
		})
	}
}

func TestPowerShellQuoting(t *testing.T) {
	got := psString("it's $env:X `n \u2019q\u2019\nline 2")
	want := "('it''s $env:X `n \u2019\u2019q\u2019\u2019' + \"`n\" + 'line 2')"
	if got != want {
		t.Errorf("psString = %s, want %s", got, want)
	}
}
