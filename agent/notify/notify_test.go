package notify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	for goos, want := range map[string]Notifier{"windows": &Windows{}, "darwin": &MacOS{}, "linux": &Linux{}, "freebsd": &Linux{}} {
		if got := ForOS(goos, nil); cmp.Diff(want, got) != "" {
			t.Errorf("ForOS(%s) = %T, want %T", goos, got, want)
		}
	}
}
