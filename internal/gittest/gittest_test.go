package gittest

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDaemonStopsWithTheTest: when the test that started a git daemon
// ends, the daemon and the child it forked for an open connection are
// gone, and the port no longer answers.
func TestDaemonStopsWithTheTest(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds processes through /proc")
	}
	RequireGit(t)
	base := t.TempDir()
	up := NewUpstream(t, base, "fleet")
	up.Write(map[string]string{"fleet.cue": "package fleet\n"})
	up.Commit("Start the fleet")

	var addr string
	t.Run("serve", func(t *testing.T) {
		url := StartDaemon(t, base)
		addr = strings.TrimSuffix(strings.TrimPrefix(url, "git://"), "/")
		Run(t, Env(t), t.TempDir(), "ls-remote", url+"fleet.git")
		// The daemon forks a child for each connection; one left open
		// keeps its child waiting for a request when the test ends.
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		waitProcs(t, base, func(n int) bool { return n >= 2 }, "the daemon and a child for the open connection")
	})

	waitProcs(t, base, func(n int) bool { return n == 0 }, "no git daemon process left after the test ended")
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after the test ended", addr)
	}
}

// waitProcs polls until ok holds for the number of live processes whose
// command line names dir; the kernel ends a killed process shortly after
// the signal, not at once.
func waitProcs(t *testing.T, dir string, ok func(int) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := processesNaming(t, dir)
		if ok(len(procs)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s; running: %q", want, procs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesNaming returns the command lines of the live processes with an
// argument that names dir. Zombies have an empty command line.
func processesNaming(t *testing.T, dir string) []string {
	t.Helper()
	pids, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		if bytes.Contains(b, []byte(dir)) {
			out = append(out, strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " "))
		}
	}
	return out
}
