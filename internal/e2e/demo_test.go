package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchline/patchline/agent/backend/sim"
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

// demoBinaries returns a directory holding patchd, patch-agent and
// patchctl, built from this tree, for the demo's DEMO_BIN.
func demoBinaries(t *testing.T) string {
	t.Helper()
	patchd, _ := binaries(t)
	dir := filepath.Dir(patchd)
	if _, err := os.Stat(filepath.Join(dir, "patchctl")); err == nil {
		return dir
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "patchctl"), "../../cmd/patchctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../../cmd/patchctl: %v\n%s", err, out)
	}
	return dir
}

// demoSimState is what the demo's test reads of a simulated endpoint's
// sim-state.json.
type demoSimState struct {
	Prompts []struct {
		Title  string `json:"title"`
		Answer string `json:"answer"`
	} `json:"prompts"`
	Reboots int `json:"reboots"`
}

// TestDemoRecordsPrompts runs `make demo`'s script from start to end (a
// minute and a half): the broad ring of the demo fleet reboots by prompt,
// so its simulated endpoints whose job left a reboot pending record
// prompts, answered, and reboot; the other rings, which reboot
// if-required, are never asked; and the demo shows the prompts.
func TestDemoRecordsPrompts(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is missing; make demo needs it")
	}
	bin := demoBinaries(t)
	freePort := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	dir := filepath.Join(t.TempDir(), "demo")
	// The demo bounds its own waits (about four minutes at worst); the
	// context only guards against a hang. SIGTERM lets its trap stop
	// patchd and the agents.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, filepath.Join("..", "..", "examples", "demo.sh"), dir)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = append(os.Environ(), "DEMO_BIN="+bin, fmt.Sprintf("DEMO_PORT=%d", freePort()), fmt.Sprintf("DEMO_METRICS_PORT=%d", freePort()))
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Every endpoint is compliant.") {
		t.Fatalf("demo.sh printed:\n%s\nwant the fleet to converge", out)
	}

	hosts, err := filepath.Glob(filepath.Join(dir, "agents", "*"))
	if err != nil || len(hosts) != 8 {
		t.Fatalf("the demo's agents' state directories: %v (%v), want 8", hosts, err)
	}
	asked, rebooted := 0, 0
	for _, h := range hosts {
		host := filepath.Base(h)
		var st demoSimState
		data, err := os.ReadFile(filepath.Join(h, sim.StateFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			t.Fatal(err)
		default:
			if err := json.Unmarshal(data, &st); err != nil {
				t.Fatalf("%s/sim-state.json: %v", host, err)
			}
		}
		prompts := 0
		for _, p := range st.Prompts {
			if p.Answer != "" {
				prompts++
			}
		}
		if !strings.Contains(host, "-broad-") {
			if len(st.Prompts) > 0 {
				t.Errorf("%s, outside the prompt ring, recorded prompts or notices %+v; want none", host, st.Prompts)
			}
			continue
		}
		asked += prompts
		if prompts > 0 && st.Reboots > 0 {
			rebooted++
		}
		// The demo showed the prompts recorded until then: no more than the
		// file holds now.
		shown := demoPromptsShown(out, host)
		if shown > prompts {
			t.Errorf("the demo showed %d prompts for %s, which recorded %d", shown, host, prompts)
		}
	}
	if asked == 0 {
		t.Fatalf("no endpoint of the broad ring (reboot: prompt) recorded a prompt; demo.sh printed:\n%s", out)
	}
	if rebooted == 0 {
		t.Errorf("no prompted endpoint of the broad ring rebooted; demo.sh printed:\n%s", out)
	}
	shown := 0
	for _, h := range hosts {
		shown += demoPromptsShown(out, filepath.Base(h))
	}
	if shown == 0 {
		t.Errorf("demo.sh printed:\n%s\nwant it to show the broad ring's prompts", out)
	}
}

// demoPromptsShown counts the prompt lines the demo printed under host in
// its step on the prompt ring.
func demoPromptsShown(out, host string) int {
	_, after, ok := strings.Cut(out, "\n"+host+":\n")
	if !ok {
		return 0
	}
	n := 0
	for _, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "    ") {
			break
		}
		if strings.Contains(line, " UTC  prompt  ") {
			n++
		}
	}
	return n
}
