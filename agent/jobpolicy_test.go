package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/agent/notify"
	"github.com/patchline/patchline/internal/proctest"
	"github.com/patchline/patchline/protocol"
)

// advanceTo moves the fake clock to until, stopping at every moment the
// reboot plan has something due and letting the agent do it, as the run
// loop does.
func advanceTo(t *testing.T, h *harness, a *Agent, until time.Time) {
	t.Helper()
	for range 100 {
		next := a.reboots.Next()
		if next.IsZero() || next.After(until) {
			h.clock.advance(until.Sub(h.clock.Now()))
			a.tickReboots(t.Context())
			return
		}
		if d := next.Sub(h.clock.Now()); d > 0 {
			h.clock.advance(d)
		}
		a.tickReboots(t.Context())
	}
	t.Fatal("the reboot plan kept being due")
}

// recordReboots makes a's reboot command a recorder of the fake time it
// ran at.
func recordReboots(h *harness, a *Agent, at *[]time.Time) {
	a.run = func(_ context.Context, argv []string) error {
		*at = append(*at, h.clock.Now())
		return nil
	}
}

func TestForceAndAlwaysRebootAtTheDeadline(t *testing.T) {
	tests := []struct {
		name        string
		policy      protocol.RebootPolicy
		pending     bool
		wantReboot  []time.Time
		wantNotices []time.Time
	}{
		{name: "force reboots at the deadline, after warnings, not a minute after the job",
			policy:  protocol.RebootPolicy{Mode: protocol.RebootForce, Deadline: "4h", Warnings: []string{"1h", "15m"}},
			pending: true, wantReboot: []time.Time{t0.Add(4 * time.Hour)},
			wantNotices: []time.Time{t0, t0.Add(3 * time.Hour), t0.Add(3*time.Hour + 45*time.Minute)}},
		{name: "force does not reboot when nothing is pending",
			policy: protocol.RebootPolicy{Mode: protocol.RebootForce, Deadline: "4h", Warnings: []string{"1h"}}},
		{name: "always reboots at the deadline though nothing is pending",
			policy:     protocol.RebootPolicy{Mode: protocol.RebootAlways, Deadline: "2h"},
			wantReboot: []time.Time{t0.Add(2 * time.Hour)}, wantNotices: []time.Time{t0}},
		{name: "an older controller's force with rebootDeadline waits for it too",
			policy: protocol.RebootPolicy{Mode: protocol.RebootForce, Deadline: "4h"}, pending: true,
			wantReboot: []time.Time{t0.Add(4 * time.Hour)}, wantNotices: []time.Time{t0}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.be.rebootPending = tt.pending
			a := h.enrolled(t)
			var reboots []time.Time
			recordReboots(h, a, &reboots)
			p := job(a.id.Endpoint, "job-1", 1, "linux-image-amd64@6.1.129-1")
			if i == 3 {
				p.Reboot, p.RebootDeadline = protocol.RebootForce, "4h"
			} else {
				p.RebootPolicy = &tt.policy
			}
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			advanceTo(t, h, a, t0.Add(time.Minute))
			if len(reboots) != 0 {
				t.Fatalf("rebooted at %v: a minute after the job", reboots)
			}
			_, reports, _, results := h.fc.snapshot()
			want := protocol.RebootState{}
			if tt.wantReboot != nil {
				want = protocol.RebootState{Mode: tt.policy.Mode, ScheduledAt: tt.wantReboot[0]}
			}
			if tt.pending {
				want.PendingSince = t0
			}
			if d := cmp.Diff(&want, results["job-1"].Reboot); d != "" {
				t.Errorf("result's reboot state (-want +got):\n%s", d)
			}
			if d := cmp.Diff(&want, reports[len(reports)-1].Reboot); d != "" {
				t.Errorf("report's reboot state (-want +got):\n%s", d)
			}
			advanceTo(t, h, a, t0.Add(5*time.Hour))
			if d := cmp.Diff(tt.wantReboot, reboots); d != "" {
				t.Errorf("reboot times (-want +got):\n%s", d)
			}
			var notices []time.Time
			for _, s := range h.people.all() {
				notices = append(notices, s.At)
				if !strings.Contains(s.Message, "This computer will restart at Wed 11 Mar 0") {
					t.Errorf("notice %q does not say when", s.Message)
				}
			}
			if d := cmp.Diff(tt.wantNotices, notices); d != "" {
				t.Errorf("notices (-want +got):\n%s", d)
			}
		})
	}
}

func TestPromptThreeDeferralsThenRebootAtTheDeadline(t *testing.T) {
	h := newHarness(t)
	h.be.rebootPending = true
	a := h.enrolled(t)
	var reboots []time.Time
	recordReboots(h, a, &reboots)
	p := job(a.id.Endpoint, "job-1", 1, "linux-image-amd64@6.1.129-1")
	p.RebootPolicy = &protocol.RebootPolicy{Mode: protocol.RebootPrompt, Deferrals: 3, DeferFor: "4h", Deadline: "10h", Timezone: "Europe/Berlin"}
	if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
		t.Fatal(err)
	}
	_, _, _, results := h.fc.snapshot()
	if d := cmp.Diff(&protocol.RebootState{Mode: protocol.RebootPrompt, PendingSince: t0, ScheduledAt: t0.Add(10 * time.Hour)}, results["job-1"].Reboot); d != "" {
		t.Errorf("result's reboot state (-want +got):\n%s", d)
	}
	advanceTo(t, h, a, t0.Add(5*time.Hour))

	// The agent restarts between the second and the third prompt: the
	// deferrals it recorded are still there.
	a = h.agent(t)
	recordReboots(h, a, &reboots)
	if got := a.reboots.State().DeferralsUsed; got != 2 {
		t.Errorf("after a restart %d deferrals are recorded, want 2", got)
	}
	advanceTo(t, h, a, t0.Add(12*time.Hour))

	if d := cmp.Diff([]time.Time{t0, t0.Add(4 * time.Hour), t0.Add(8 * time.Hour)}, h.people.prompts()); d != "" {
		t.Errorf("prompts (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]time.Time{t0.Add(10 * time.Hour)}, reboots); d != "" {
		t.Errorf("reboots (-want +got):\n%s", d)
	}
	first := h.people.all()[0]
	wantText := "Updates installed on this computer need a restart. It will restart at Wed 11 Mar 09:00 CET at the latest. You can postpone the restart by 4h, 3 more times."
	if first.Message != wantText {
		t.Errorf("first prompt:\n%s\nwant:\n%s", first.Message, wantText)
	}
	if a.reboots.State() != (protocol.RebootState{PendingSince: t0}) {
		t.Errorf("after the reboot the state is %+v, want no plan", a.reboots.State())
	}
}

func TestPromptAnswers(t *testing.T) {
	policy := &protocol.RebootPolicy{Mode: protocol.RebootPrompt, Deferrals: 3, DeferFor: "1h", Deadline: "8h"}
	tests := []struct {
		name    string
		answers []notify.Answer
		pending bool
		want    []time.Time
	}{
		{name: "restart now at the second prompt", answers: []notify.Answer{notify.Postpone, notify.RestartNow}, pending: true, want: []time.Time{t0.Add(time.Hour)}},
		{name: "nobody logged in: reboot at once", answers: []notify.Answer{notify.NoUsers}, pending: true, want: []time.Time{t0}},
		{name: "unanswered prompts use the deferrals: reboot an hour after the third", answers: []notify.Answer{notify.NoAnswer, notify.NoAnswer, notify.NoAnswer},
			pending: true, want: []time.Time{t0.Add(3 * time.Hour)}},
		{name: "nothing pending: no prompt, no reboot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.be.rebootPending = tt.pending
			h.people.answers = tt.answers
			a := h.enrolled(t)
			var reboots []time.Time
			recordReboots(h, a, &reboots)
			p := job(a.id.Endpoint, "job-1", 1, "linux-image-amd64@6.1.129-1")
			p.RebootPolicy = policy
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			advanceTo(t, h, a, t0.Add(9*time.Hour))
			if d := cmp.Diff(tt.want, reboots); d != "" {
				t.Errorf("reboots (-want +got):\n%s", d)
			}
			if !tt.pending && len(h.people.all()) != 0 {
				t.Errorf("shown %+v with nothing pending", h.people.all())
			}
		})
	}
}

func signed(path, content string) *protocol.Script {
	sum := sha256.Sum256([]byte(content))
	return &protocol.Script{Path: path, Shell: protocol.ShellSh, Content: content, SHA256: hex.EncodeToString(sum[:])}
}

func TestHooks(t *testing.T) {
	const upd = "openssl@3.0.15-1"
	marker := func(dir, name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name        string
		pre, post   func(dir string) *protocol.Script
		wantInstall int
		wantResult  protocol.Result
		wantError   string
		wantHooks   []protocol.HookResult
		wantRefusal string
	}{
		{
			name: "a pre script that succeeds runs before the install, the post script after",
			pre: func(dir string) *protocol.Script {
				return signed("scripts/stop-ehr.sh", "echo stopped; touch "+marker(dir, "pre")+"\n")
			},
			post: func(dir string) *protocol.Script {
				return signed("scripts/start-ehr.sh", "echo started $PATCHLINE_JOB\n")
			},
			wantInstall: 1, wantResult: protocol.ResultSucceeded,
			wantHooks: []protocol.HookResult{{Hook: "pre", Path: "scripts/stop-ehr.sh", Output: "stopped\n"}, {Hook: "post", Path: "scripts/start-ehr.sh", Output: "started job-1\n"}},
		},
		{
			name: "a pre script failing skips the install",
			pre: func(dir string) *protocol.Script {
				return signed("scripts/stop-ehr.sh", "echo EHR will not stop >&2; exit 3\n")
			},
			post: func(dir string) *protocol.Script {
				return signed("scripts/start-ehr.sh", "touch "+marker(dir, "post")+"\n")
			},
			wantInstall: 0, wantResult: protocol.ResultHookFailed, wantError: "pre script scripts/stop-ehr.sh: exit status 3",
			wantHooks: []protocol.HookResult{{Hook: "pre", Path: "scripts/stop-ehr.sh", ExitCode: 3, Error: "script scripts/stop-ehr.sh: exit status 3", Output: "EHR will not stop\n"}},
		},
		{
			name:        "a post script failing is reported beside the installs",
			post:        func(dir string) *protocol.Script { return signed("scripts/start-ehr.sh", "exit 1\n") },
			wantInstall: 1, wantResult: protocol.ResultSucceeded,
			wantHooks: []protocol.HookResult{{Hook: "post", Path: "scripts/start-ehr.sh", ExitCode: 1, Error: "script scripts/start-ehr.sh: exit status 1"}},
		},
		{
			name: "a script whose content differs from its signed hash is refused, and nothing runs",
			pre: func(dir string) *protocol.Script {
				s := signed("scripts/stop-ehr.sh", "echo reviewed\n")
				s.Content = "touch " + marker(dir, "pre") + "\n"
				return s
			},
			wantRefusal: "pre script scripts/stop-ehr.sh: script content does not match its signed hash",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			dir := t.TempDir()
			a := h.enrolled(t)
			h.be.during = func() {
				if _, err := os.Stat(marker(dir, "pre")); tt.pre != nil && err != nil {
					t.Errorf("the install ran before the pre script: %v", err)
				}
			}
			p := job(a.id.Endpoint, "job-1", 1, upd)
			p.Hooks = &protocol.JobHooks{Timeout: "1m"}
			if tt.pre != nil {
				p.Hooks.Pre = tt.pre(dir)
			}
			if tt.post != nil {
				p.Hooks.Post = tt.post(dir)
			}
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			if n := h.be.installCount(upd); n != tt.wantInstall {
				t.Errorf("installs = %d, want %d", n, tt.wantInstall)
			}
			_, _, _, results := h.fc.snapshot()
			r := results["job-1"]
			if tt.wantRefusal != "" {
				if !r.Refused || r.Reason != tt.wantRefusal || len(r.Updates) != 1 || r.Updates[0].Result != protocol.ResultRefused {
					t.Errorf("result = %+v, want refused: %s", r, tt.wantRefusal)
				}
				if _, err := os.Stat(marker(dir, "pre")); err == nil {
					t.Error("the altered script ran")
				}
				return
			}
			if len(r.Updates) != 1 || r.Updates[0].Result != tt.wantResult || r.Updates[0].Error != tt.wantError {
				t.Errorf("update results = %+v, want %s %q", r.Updates, tt.wantResult, tt.wantError)
			}
			if d := cmp.Diff(tt.wantHooks, r.Hooks); d != "" {
				t.Errorf("hook results (-want +got):\n%s", d)
			}
			if _, err := os.Stat(marker(dir, "post")); err == nil {
				t.Error("the post script ran after a failed pre script")
			}
		})
	}
}

func TestGuardProcessDefersTheJob(t *testing.T) {
	const upd = "openssl@3.0.15-1"
	tests := []struct {
		name       string
		endsAfter  int // the process is stopped at this Sleep (0: never)
		wantResult protocol.Result
		wantError  string
		wantWaited time.Duration
	}{
		{name: "a guard process that keeps running defers the job", wantResult: protocol.ResultDeferredByGuard,
			wantError: "process EHR-Client-Test is running (waited 30m0s for it to end)", wantWaited: 30 * time.Minute},
		{name: "a guard process that ends during the wait lets the job run", endsAfter: 2, wantResult: protocol.ResultSucceeded, wantWaited: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			proc := proctest.StartNamed(t, "ehr-client-test")
			sleeps := 0
			h.clock.onSleep = func() {
				if sleeps++; sleeps == tt.endsAfter {
					proc.Process.Kill()
					proc.Wait()
				}
			}
			a := h.enrolled(t)
			p := job(a.id.Endpoint, "job-1", 1, upd)
			p.Guards = &protocol.JobGuards{Processes: []string{"zoom.us", "EHR-Client-Test"}, Wait: "30m"}
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			_, _, _, results := h.fc.snapshot()
			r := results["job-1"].Updates
			if len(r) != 1 || r[0].Result != tt.wantResult || r[0].Error != tt.wantError {
				t.Errorf("results = %+v, want %s %q", r, tt.wantResult, tt.wantError)
			}
			if n, want := h.be.installCount(upd), map[bool]int{true: 1}[tt.wantResult == protocol.ResultSucceeded]; n != want {
				t.Errorf("installs = %d, want %d", n, want)
			}
			if waited := h.clock.Now().Sub(t0); waited != tt.wantWaited {
				t.Errorf("waited %v, want %v", waited, tt.wantWaited)
			}
		})
	}
}

func TestGuardWaitEndsWithTheWindow(t *testing.T) {
	h := newHarness(t)
	proctest.StartNamed(t, "ehr-client-test")
	a := h.enrolled(t)
	p := job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1")
	p.Guards = &protocol.JobGuards{Processes: []string{"ehr-client-test"}, Wait: "8h"}
	if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
		t.Fatal(err)
	}
	if waited := h.clock.Now().Sub(t0); waited != 2*time.Hour {
		t.Errorf("waited %v, want the 2h left of the window", waited)
	}
}

func TestRollbackOnABackendWithoutIt(t *testing.T) {
	h := newHarness(t)
	a := h.enrolled(t)
	p := job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1")
	p.Action = protocol.ActionRollback
	if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
		t.Fatal(err)
	}
	_, _, _, results := h.fc.snapshot()
	r := results["job-1"].Updates
	if len(r) != 1 || r[0].Result != protocol.ResultFailed || r[0].Error != "rollback is not supported by the apt backend" {
		t.Errorf("results = %+v", r)
	}
	if h.be.installCount("openssl@3.0.15-1") != 0 {
		t.Error("a rollback job installed")
	}
}

func TestJobPolicyRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(*protocol.JobPayload)
		want string
	}{
		{"an unknown reboot mode", func(p *protocol.JobPayload) { p.RebootPolicy = &protocol.RebootPolicy{Mode: "sometimes"} }, `reboot mode "sometimes"`},
		{"an unknown action", func(p *protocol.JobPayload) { p.Action = "uninstall-everything" }, `unknown action "uninstall-everything"`},
		{"a bad hook timeout", func(p *protocol.JobPayload) { p.Hooks = &protocol.JobHooks{Timeout: "soon"} }, `hooks timeout "soon"`},
		{"a PowerShell script on Linux", func(p *protocol.JobPayload) {
			s := signed("scripts/stop.ps1", "Stop-Service ehr")
			s.Shell = protocol.ShellPowerShell
			p.Hooks = &protocol.JobHooks{Post: s}
		}, "post script scripts/stop.ps1: a powershell script does not run on linux"},
		{"a bad guard wait", func(p *protocol.JobPayload) {
			p.Guards = &protocol.JobGuards{Processes: []string{"x"}, Wait: "a while"}
		}, `guards wait "a while"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			a := h.enrolled(t)
			p := job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1")
			tt.edit(&p)
			if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
				t.Fatal(err)
			}
			_, _, _, results := h.fc.snapshot()
			if r := results["job-1"]; !r.Refused || !strings.Contains(r.Reason, tt.want) {
				t.Errorf("result = %+v, want refused: %s", r, tt.want)
			}
			if h.be.installCount("openssl@3.0.15-1") != 0 {
				t.Error("a refused job installed")
			}
		})
	}
}

// TestRunCarriesOutAPlanFromBeforeARestart: a reboot planned by an
// earlier run whose deadline passed while the agent was stopped happens
// in the run loop, once.
func TestRunCarriesOutAPlanFromBeforeARestart(t *testing.T) {
	h := newHarness(t)
	before := h.agent(t)
	if err := before.reboots.Schedule("job-0", protocol.RebootPolicy{Mode: protocol.RebootAlways, Deadline: "1m"}, false); err != nil {
		t.Fatal(err)
	}
	h.clock.advance(2 * time.Minute)
	a := h.agent(t)
	runAgent(t, a, h.fc, func() bool { return len(h.reboot.commands()) > 0 })
	if d := cmp.Diff([][]string{{"shutdown", "-r", "+1"}}, h.reboot.commands()); d != "" {
		t.Errorf("reboot commands (-want +got):\n%s", d)
	}
	if again := h.agent(t); !again.reboots.Next().IsZero() {
		t.Error("the plan is still there after the reboot")
	}
}

// TestAnOlderControllerStillGetsReportsAndResults: a controller that
// predates reboot state refuses the unknown field; the agent sends the
// report and the result again without it instead of dropping them.
func TestAnOlderControllerStillGetsReportsAndResults(t *testing.T) {
	h := newHarness(t)
	h.fc.predatesReboot = true
	a := h.enrolled(t)
	p := job(a.id.Endpoint, "job-1", 1, "openssl@3.0.15-1")
	p.Hooks = &protocol.JobHooks{Post: signed("scripts/start.sh", "true\n")}
	if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
		t.Fatal(err)
	}
	_, reports, _, results := h.fc.snapshot()
	r, ok := results["job-1"]
	if !ok || len(r.Updates) != 1 || r.Updates[0].Result != protocol.ResultSucceeded || r.Reboot != nil || r.Hooks != nil {
		t.Errorf("result = %+v, %v; want the outcomes without reboot state or script results", r, ok)
	}
	if len(reports) != 1 || reports[0].Reboot != nil {
		t.Errorf("reports = %+v; want one, without reboot state", reports)
	}
	if n := len(a.journal.pending()); n != 0 {
		t.Errorf("%d results left in the outbox", n)
	}
}

// TestSimulatedEndpointRecordsPromptsAndRollsBack runs the agent over the
// sim backend with no notifier configured: the backend records the
// prompts and answers them, reboots its simulated machine, and rolls an
// update back.
func TestSimulatedEndpointRecordsPromptsAndRollsBack(t *testing.T) {
	h := newHarness(t)
	simb, err := sim.New(sim.Options{Seed: 3, Family: "windows", StateDir: h.dir, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config()
	cfg.Backend, cfg.Notifier, cfg.RebootCommand = simb, nil, nil
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.enrollRetrying(t.Context()); err != nil {
		t.Fatal(err)
	}
	inv, err := simb.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var kb *protocol.Update
	for _, u := range inv {
		if !u.Installed && u.RebootRequired && len(u.Requires) == 0 {
			kb = u
			break
		}
	}
	if kb == nil {
		t.Fatal("the simulated endpoint offers no update that needs a reboot")
	}
	p := protocol.JobPayload{ID: "job-1", Endpoint: a.id.Endpoint, Seq: 1, NotAfter: t0.Add(2 * time.Hour), Revision: "4f1c2e9", IdempotencyKey: "key-1",
		Updates:      []protocol.JobUpdate{{ID: kb.ID, Source: kb.Source, Name: kb.Name, Version: kb.Version}},
		RebootPolicy: &protocol.RebootPolicy{Mode: protocol.RebootPrompt, Deferrals: 2, DeferFor: "1h", Deadline: "4h"}}
	if err := a.handle(t.Context(), h.fc.sign(p)); err != nil {
		t.Fatal(err)
	}
	advanceTo(t, h, a, t0.Add(5*time.Hour))
	prompts := simb.Prompts()
	if len(prompts) == 0 || prompts[0].Title != "Restart needed" || prompts[0].Answer == "" {
		t.Errorf("recorded prompts = %+v", prompts)
	}
	if simb.Reboots() != 1 {
		t.Errorf("simulated reboots = %d, want 1", simb.Reboots())
	}

	rb := p
	rb.ID, rb.Seq, rb.IdempotencyKey, rb.Action, rb.RebootPolicy = "job-2", 2, "key-2", protocol.ActionRollback, nil
	rb.NotAfter = h.clock.Now().Add(time.Hour)
	if err := a.handle(t.Context(), h.fc.sign(rb)); err != nil {
		t.Fatal(err)
	}
	_, _, _, results := h.fc.snapshot()
	if r := results["job-2"].Updates; len(r) != 1 || r[0].Result != protocol.ResultSucceeded {
		t.Errorf("rollback results = %+v", r)
	}
	inv, _ = simb.Inventory(t.Context())
	for _, u := range inv {
		if u.ID == kb.ID && u.Installed {
			t.Errorf("%s still installed after the rollback", kb.ID)
		}
	}
}
