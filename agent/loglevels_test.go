package agent

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// errorLines are the lines of a text log at level ERROR.
func errorLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

// deadAddress is a loopback address nothing listens on: connecting to it
// is refused, as while the controller restarts.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// waitLog waits until the log holds want, failing after 10 s.
func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q after 10s:\n%s", want, tail(logs.String()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestControllerAwayIsNoError: while the controller cannot be reached
// (restarting: its port refuses connections) the agent retries; each
// refused attempt is INFO and each call that runs out of retries WARN,
// never ERROR, and so is its stop when it is told to.
func TestControllerAwayIsNoError(t *testing.T) {
	h := newHarness(t)
	h.enrolled(t)
	cfg := h.config()
	cfg.Controller = deadAddress(t)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitLog(t, h.logs, "job poll failed")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	logs := h.logs.String()
	if errs := errorLines(logs); len(errs) > 0 {
		t.Errorf("an unreachable controller and a stop are logged as errors:\n%s", strings.Join(errs, "\n"))
	}
	for _, want := range []string{
		`level=INFO msg="request failed"`,
		`level=WARN msg="inventory report failed"`,
		`level=WARN msg="job poll failed"`,
		`level=INFO msg="agent stopped: shutdown requested"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, tail(logs))
		}
	}
}

// TestStopDuringALongPollIsNoError: a stop (SIGTERM cancels Run's
// context) while the agent waits for a job ends the long-poll, and the
// agent logs its stop at INFO, not the cancelled request as an error.
func TestStopDuringALongPollIsNoError(t *testing.T) {
	h := newHarness(t)
	a := h.enrolled(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.After(10 * time.Second)
	polled := func() bool {
		requests, _, _, _ := h.fc.snapshot()
		return slices.Contains(requests, "GET "+protocol.PathJobs)
	}
	for !polled() {
		select {
		case <-h.fc.changed:
		case <-deadline:
			t.Fatal("the agent did not poll in 10s")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	logs := h.logs.String()
	if errs := errorLines(logs); len(errs) > 0 {
		t.Errorf("a stop is logged as an error:\n%s", strings.Join(errs, "\n"))
	}
	if !strings.Contains(logs, `level=INFO msg="agent stopped: shutdown requested"`) {
		t.Errorf("the stop is not logged at INFO:\n%s", tail(logs))
	}
}
