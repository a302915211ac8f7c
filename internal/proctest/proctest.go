// Package proctest checks, in tests, that the code under test left no
// child process behind: every process it started has ended and has been
// waited for.
package proctest

import (
	"os"
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
