package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store/sqlite"
)

// startController runs a real patchd on loopback following a local fleet
// repo made from examples/demo/fleet, and returns its URL and a file
// holding its admin token.
func startController(t *testing.T) (url, tokenFile string) {
	t.Helper()
	return startControllerWith(t, nil)
}

// startControllerWith is startController with enrollment secrets (client
// id → secret).
func startControllerWith(t *testing.T, enrollment map[string]string) (url, tokenFile string) {
	t.Helper()
	repo := t.TempDir()
	if _, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}}); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/demo/fleet", repo)
	commitAll(t, repo, "Demo fleet", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))

	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(patchdtest.AdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return patchdtest.Start(t, patchdtest.Config(t, repo, enrollment)).URL, tokenFile
}

func TestStatusAndStateExport(t *testing.T) {
	url, token := startController(t)

	code, out, errOut := run(t, "status", "--controller", url, "--token-file", token)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "Branch head:") || !strings.Contains(out, "CLIENT") {
		t.Errorf("status output:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "state.json")
	if code, _, errOut := run(t, "state", "export", "--controller", url, "--token-file", token, "--out", file); code != 0 {
		t.Fatalf("state export: exit %d: %s", code, errOut)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := protocol.DecodeSnapshot(f); err != nil {
		t.Errorf("exported state does not decode: %v", err)
	}

	// With the controller's replicas: the first one down, the call goes
	// to the next.
	if code, out, errOut := run(t, "status", "--controller", "http://127.0.0.1:1,"+url, "--token-file", token); code != 0 || !strings.Contains(out, "Branch head:") {
		t.Errorf("status with the first replica down: exit %d, %s%s", code, out, errOut)
	}

	wrong := writeToken(t, "nope")
	tests := []struct {
		name string
		env  string // PATCHLINE_TOKEN
		args []string
		want string
	}{
		{"no token", "", []string{"status", "--controller", url}, "no token: pass --token-file FILE or set PATCHLINE_TOKEN"},
		{"wrong token", "", []string{"status", "--controller", url, "--token-file", wrong}, "401"},
		{"wrong token in the environment", "nope", []string{"status", "--controller", url}, "401"},
		{"controller down", "x", []string{"status", "--controller", "http://127.0.0.1:1"}, "reach controller"},
		{"a token on the command line", "", []string{"status", "--controller", url, "--token", patchdtest.AdminToken}, "unknown flag: --token"},
	}
	t.Setenv("PATCHLINE_ADMIN_TOKEN", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATCHLINE_TOKEN", tt.env)
			code, _, errOut := run(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want an error mentioning %q", code, errOut, tt.want)
			}
		})
	}
}

// TestBackupCommand: patchctl backup saves a verified copy of a running
// controller's store, and a failed download leaves the old file alone.
func TestBackupCommand(t *testing.T) {
	url, token := startController(t)
	out := filepath.Join(t.TempDir(), "patchline.db")
	code, stdout, errOut := run(t, "backup", "--controller", url, "--token-file", token, "--out", out)
	if code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "verified") {
		t.Errorf("backup output: %q", stdout)
	}
	if err := sqlite.Verify(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATCHLINE_ADMIN_TOKEN", "")
	t.Setenv("PATCHLINE_TOKEN", "")
	if code, _, errOut := run(t, "backup", "--controller", url, "--token-file", writeToken(t, "wrong"), "--out", out); code == 0 || !strings.Contains(errOut, "401") {
		t.Errorf("backup with a wrong token: exit %d, %q", code, errOut)
	}
	if after, err := os.ReadFile(out); err != nil || !bytes.Equal(before, after) {
		t.Errorf("a failed backup changed %s (%v)", out, err)
	}
	if code, _, errOut := run(t, "backup", "--controller", url, "--token-file", token); code == 0 || !strings.Contains(errOut, "--out") {
		t.Errorf("backup without --out: exit %d, %q", code, errOut)
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%d files next to the backup, want only it", len(entries))
	}
}

// TestAdminTokenNeverInClear: the commands that send the admin token
// refuse plain http to a host that is not loopback, before sending
// anything, and say what to use instead; loopback stays allowed (an SSH
// tunnel, or patchctl on the controller's host).
func TestAdminTokenNeverInClear(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	loopback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Query().Has("redirect") {
			http.Redirect(w, r, "http://patchd.msp.example:8420/v1/status", http.StatusFound)
			return
		}
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer loopback.Close()
	_, port, err := net.SplitHostPort(loopback.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATCHLINE_TOKEN", "admin-token-for-tests-only")
	tests := []struct {
		name       string
		args       []string
		want       string // in stderr
		wantServed int    // requests the loopback server answered
	}{
		{"status over http to a host name", []string{"status", "--controller", "http://patchd.msp.example:8420"},
			"plain http would send the admin token in clear; use https://, or an SSH tunnel", 0},
		{"backup over http to a LAN address", []string{"backup", "--controller", "http://10.20.0.5:8420", "--out", filepath.Join(t.TempDir(), "b.db")},
			"plain http would send the admin token in clear", 0},
		{"state export over http to a host name", []string{"state", "export", "--controller", "HTTP://patchd.msp.example"},
			"plain http would send the admin token in clear", 0},
		{"status over http to 127.0.0.1", []string{"status", "--controller", loopback.URL}, "401", 1},
		{"status over http to localhost", []string{"status", "--controller", "http://localhost:" + port}, "401", 1},
		{"a redirect to plain http elsewhere", []string{"status", "--controller", loopback.URL + "/?redirect=1"},
			"redirected to http://patchd.msp.example:8420/v1/status: plain http would send the admin token in clear", 1},
		{"replicas, one over http to a host name", []string{"status", "--controller", loopback.URL + ",http://patchd-b.msp.example:8420"},
			`--controller "http://patchd-b.msp.example:8420": plain http would send the admin token in clear`, 0},
		{"replicas with an empty URL between", []string{"status", "--controller", loopback.URL + ",,https://patchd-b.msp.example"},
			"an empty URL; separate the replicas' URLs with single commas", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			tokens = nil
			mu.Unlock()
			code, _, errOut := run(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", code, errOut, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(tokens) != tt.wantServed {
				t.Errorf("the loopback controller got %d requests, want %d", len(tokens), tt.wantServed)
			}
		})
	}
}

// writeToken writes token to a file of its own and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWhereTheTokenComesFrom: --token-file first, then PATCHLINE_TOKEN,
// then the older PATCHLINE_ADMIN_TOKEN; never the command line.
func TestWhereTheTokenComesFrom(t *testing.T) {
	url, admin := startController(t)
	wrong := writeToken(t, "not-the-token")
	tests := []struct {
		name          string
		file          string
		env, oldEnv   string
		wantOK        bool
		wantInMessage string
	}{
		{"the file", admin, "wrong", "wrong", true, ""},
		{"the file before the environment", wrong, patchdtest.AdminToken, patchdtest.AdminToken, false, "401"},
		{"PATCHLINE_TOKEN", "", patchdtest.AdminToken, "wrong", true, ""},
		{"PATCHLINE_TOKEN before PATCHLINE_ADMIN_TOKEN", "", "wrong", patchdtest.AdminToken, false, "401"},
		{"PATCHLINE_ADMIN_TOKEN, the older name", "", "", patchdtest.AdminToken, true, ""},
		{"an empty file", writeToken(t, ""), patchdtest.AdminToken, "", false, "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATCHLINE_TOKEN", tt.env)
			t.Setenv("PATCHLINE_ADMIN_TOKEN", tt.oldEnv)
			args := []string{"status", "--controller", url}
			if tt.file != "" {
				args = append(args, "--token-file", tt.file)
			}
			code, _, errOut := run(t, args...)
			if (code == 0) != tt.wantOK || !strings.Contains(errOut, tt.wantInMessage) {
				t.Errorf("exit %d, stderr %q; want success %v, a message with %q", code, errOut, tt.wantOK, tt.wantInMessage)
			}
		})
	}
}
