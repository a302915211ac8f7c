package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/store"
)

// logCapture is a logger writing JSON lines to a buffer, and the lines
// it wrote, decoded.
type logCapture struct {
	buf bytes.Buffer
	log *slog.Logger
}

func newLogCapture() *logCapture {
	c := &logCapture{}
	c.log = slog.New(slog.NewJSONHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return c
}

// lines returns each record as a map of its attributes (level, msg and
// the rest), with the time left out.
func (c *logCapture) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func TestHaltsAndResumesAreWarnings(t *testing.T) {
	pilotKB := protocol.Halt{Update: "KB5034441", Ring: "pilot", Reason: "halted in ring pilot: 1 of 2 endpoints failed (50%), above maxFailures 5%"}
	canaryChrome := protocol.Halt{Update: "Google.Chrome@131.0.6778.86", Ring: "canary", Reason: "halted in ring canary"}
	c := newLogCapture()
	logHaltChanges(c.log, "acme", "a508889f40c7", []protocol.Halt{pilotKB}, []protocol.Halt{canaryChrome})
	want := []map[string]any{
		{"level": "WARN", "msg": "rollout halted: later rings get no job for the update until a commit resumes it",
			"client": "acme", "ring": "canary", "update": "Google.Chrome@131.0.6778.86", "revision": "a508889f40c7", "reason": "halted in ring canary"},
		{"level": "WARN", "msg": "rollout resumed: the update is no longer halted",
			"client": "acme", "ring": "pilot", "update": "KB5034441", "revision": "a508889f40c7"},
	}
	if diff := cmp.Diff(want, c.lines(t)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}

	// The same halts with another reason change nothing.
	c = newLogCapture()
	moved := pilotKB
	moved.Reason = "halted in ring pilot: 2 of 3 endpoints failed"
	logHaltChanges(c.log, "acme", "a508889f40c7", []protocol.Halt{pilotKB}, []protocol.Halt{moved})
	if got := c.buf.String(); got != "" {
		t.Errorf("unchanged halts logged:\n%s", got)
	}
}

func TestManyHaltsAreLoggedBounded(t *testing.T) {
	var halts []protocol.Halt
	for i := range maxLogItems + 5 {
		halts = append(halts, protocol.Halt{Update: strings.Repeat("x", 300) + string(rune('a'+i)), Ring: "canary", Reason: strings.Repeat("r", 1000)})
	}
	c := newLogCapture()
	logHaltChanges(c.log, "acme", "c0ffee", nil, halts)
	lines := c.lines(t)
	if len(lines) != maxLogItems+1 {
		t.Fatalf("%d lines for %d halts, want %d", len(lines), len(halts), maxLogItems+1)
	}
	for _, l := range lines[:maxLogItems] {
		if u := l["update"].(string); len(u) > maxLogText+len("…") {
			t.Errorf("update attribute of %d bytes", len(u))
		}
		if r := l["reason"].(string); len(r) > maxLogText+len("…") {
			t.Errorf("reason attribute of %d bytes", len(r))
		}
	}
	if last := lines[maxLogItems]; last["level"] != "WARN" || last["unlogged"] != float64(5) {
		t.Errorf("last line %v, want a warning counting 5 unlogged", last)
	}
}

func TestJobResultsNeedingAPersonAreLogged(t *testing.T) {
	c := newLogCapture()
	logJobResults(context.Background(), c.log, "acme", "acme-ws-002", "job-8c1f", "pilot", []store.UpdateResult{
		{Update: "KB5034440", Result: protocol.ResultSucceeded},
		{Update: "KB5034441", Result: protocol.ResultFailed, Error: "0x80070643"},
		{Update: "KB5034442", Result: protocol.ResultUnknown},
		{Update: "KB5034443", Result: protocol.ResultRefused, Error: "signature does not verify"},
	})
	want := []map[string]any{
		{"level": "WARN", "msg": "install failed", "client": "acme", "ring": "pilot", "update": "KB5034441",
			"endpoint": "acme-ws-002", "job": "job-8c1f", "err": "0x80070643"},
		{"level": "INFO", "msg": "install interrupted (the agent stopped); its next inventory shows whether it went in",
			"client": "acme", "ring": "pilot", "update": "KB5034442", "endpoint": "acme-ws-002", "job": "job-8c1f"},
		{"level": "WARN", "msg": "job refused by the agent", "client": "acme", "ring": "pilot", "update": "KB5034443",
			"endpoint": "acme-ws-002", "job": "job-8c1f", "err": "signature does not verify"},
	}
	if diff := cmp.Diff(want, c.lines(t)); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}

	// A job of many failed updates logs maxLogItems of them and a count.
	var many []store.UpdateResult
	for range maxLogItems + 3 {
		many = append(many, store.UpdateResult{Update: "KB1", Result: protocol.ResultFailed, Error: strings.Repeat("é", 4096)})
	}
	c = newLogCapture()
	logJobResults(context.Background(), c.log, "acme", "acme-ws-002", "job-9", "pilot", many)
	lines := c.lines(t)
	if len(lines) != maxLogItems+1 || lines[maxLogItems]["unlogged"] != float64(3) {
		t.Fatalf("%d lines, last %v; want %d and a count of 3", len(lines), lines[len(lines)-1], maxLogItems+1)
	}
	if e := lines[0]["err"].(string); len(e) > maxLogText+len("…") || !strings.HasSuffix(e, "…") {
		t.Errorf("error attribute of %d bytes, not cut: %q", len(e), e)
	}
}

func TestRefusedRevisionIsAWarning(t *testing.T) {
	var problems []string
	for i := range maxLogItems + 2 {
		problems = append(problems, "clients/acme/policy.cue:8:71: rings.1.soak: invalid duration \"48 hours\""+strings.Repeat(" ", i))
	}
	c := newLogCapture()
	logRefused(c.log, "policy revision refused; keeping the last good revision", "3d7f14c6c125", "acme", "invalid", problems)
	lines := c.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1", len(lines))
	}
	l := lines[0]
	if l["level"] != "WARN" || l["client"] != "acme" || l["revision"] != "3d7f14c6c125" || l["reason"] != "invalid" {
		t.Errorf("refusal logged as %v", l)
	}
	ps := l["problems"].([]any)
	if len(ps) != maxLogItems+1 || ps[maxLogItems] != "and 2 more" {
		t.Errorf("problems attribute has %d entries, last %v; want %d ending in \"and 2 more\"", len(ps), ps[len(ps)-1], maxLogItems+1)
	}

	// A refusal of the whole fleet names no client.
	c = newLogCapture()
	logRefused(c.log, "policy revision refused; keeping the last good revision", "3d7f14c6c125", "", "verify", []string{"unsigned commit"})
	if l := c.lines(t)[0]; l["client"] != nil {
		t.Errorf("fleet refusal names client %v", l["client"])
	}
}

// TestRecordHaltsLogsEachChange: a re-plan that finds a rollout halted
// logs it once, at WARN, with the client, ring and update; the re-plan
// that finds it gone logs its resume; one that changes nothing logs
// nothing.
func TestRecordHaltsLogsEachChange(t *testing.T) {
	e := newReplanEnv(t, nil)
	c := newLogCapture()
	e.r.log = c.log
	halt := protocol.Halt{Update: "KB1", Ring: "all", Reason: "halted in ring all: 2 of 2 endpoints failed (100%), above maxFailures 10%"}
	now := e.clock.Now()
	for _, step := range []struct {
		halted []protocol.Halt
		want   []string
	}{
		{[]protocol.Halt{halt}, []string{"WARN rollout halted: later rings get no job for the update until a commit resumes it acme all KB1"}},
		{[]protocol.Halt{halt}, nil},
		{nil, []string{"WARN rollout resumed: the update is no longer halted acme all KB1"}},
		{nil, nil},
	} {
		c.buf.Reset()
		if err := e.r.recordHalts("acme", "c0ffee", step.halted, now); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range c.lines(t) {
			got = append(got, strings.Join([]string{l["level"].(string), l["msg"].(string), l["client"].(string), l["ring"].(string), l["update"].(string)}, " "))
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("halts %v logged (-want +got):\n%s", step.halted, diff)
		}
	}
}
