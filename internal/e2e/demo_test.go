package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoRefusesATakenPort: `make demo` with its API or metrics port
// taken by another program (this test) stops before it creates or starts
// anything, and says which program holds the port and what to set,
// instead of talking to that program.
func TestDemoRefusesATakenPort(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is missing; make demo needs it")
	}
	_, ssErr := exec.LookPath("ss")
	if ssErr != nil && os.Getenv("CI") != "" {
		t.Fatal("ss is missing (Debian: iproute2); CI needs it to check the demo names the program holding the port")
	}
	// freePort is a port nothing listens on (closed again at once).
	freePort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	for _, tt := range []struct{ taken, other, what string }{
		{"DEMO_PORT", "DEMO_METRICS_PORT", "patchd's API"},
		{"DEMO_METRICS_PORT", "DEMO_PORT", "patchd's metrics"},
	} {
		t.Run(tt.taken, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			dir := filepath.Join(t.TempDir(), "demo")
			cmd := exec.Command(bash, filepath.Join("..", "..", "examples", "demo.sh"), dir)
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", tt.taken, port), fmt.Sprintf("%s=%d", tt.other, freePort()))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("demo.sh: %v, want exit status 1\n%s", err, out)
			}
			want := fmt.Sprintf("make demo: port %d (%s) is in use by another program (", port, tt.what)
			if !strings.Contains(string(out), want) || !strings.Contains(string(out), "set "+tt.taken+" to a free port") {
				t.Errorf("demo.sh printed:\n%s\nwant it to say %q and what to set", out, want)
			}
			if ssErr == nil && !strings.Contains(string(out), fmt.Sprintf("(pid %d, ", os.Getpid())) {
				t.Errorf("demo.sh printed:\n%s\nwant it to name this test's process, pid %d", out, os.Getpid())
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("demo.sh made %s before refusing: %v", dir, err)
			}
		})
	}
}
