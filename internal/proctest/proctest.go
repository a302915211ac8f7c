// Package proctest checks, in tests, that the code under test left no
// child process behind: every process it started has ended and has been
// waited for.
package proctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// NoChildLeft fails t if the test process has a child process, running or
// ended but not waited for. It checks on Linux, where /proc lists every
// thread's children, and nowhere else.
func NoChildLeft(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	files, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has ended
		}
		if pids := strings.TrimSpace(string(b)); pids != "" {
			t.Errorf("child processes left behind: %s", pids)
		}
	}
}

// RunawayPolicy is the policy of client id whose evaluation runs for
// minutes and grows to gigabytes: the comprehension of the red-team
// finding (issue 14) that evaluation limits must stop.
func RunawayPolicy(id string) string {
	return `package fleet

import "list"

client: {id: "` + id + `", name: "Runaway", timezone: "UTC"}
x: [for i in list.Range(0, 2000, 1) for j in list.Range(0, 2000, 1) {i*j}]
`
}

// StartNamed runs a copy of sleep under name (a process a guard looks
// for by its executable's name) and stops it when the test ends.
func StartNamed(t testing.TB, name string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}
